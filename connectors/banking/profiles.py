"""Bank provider profiles for the one OBIE connector: what differs per bank besides its URLs.

URLs live in ``templates/connectors/open_banking.yaml`` (one environment per bank); these are the quirks
the Yolt provider read-mes (``roodje/bespoke-providers`` ``…/{BARCLAYS,HSBC,LLOYDS_BANK,NATWEST}_ReadMe_AIS.md``,
c. 2021-22, see notes/vendors-finance-hr.md) record. Re-check each bank's ``.well-known/openid-configuration``
on the OB Directory before go-live.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BankProfile:
    """One bank's OBIE implementation details."""

    id: str
    name: str
    registration: str  # how a TPP registers (portal or DCR endpoint)
    access_token_minutes: int
    refresh_tokens: bool
    extra_headers: dict[str, str] = field(default_factory=dict)
    consent_get_supported: bool = True
    notes: str = ""


PROFILES: dict[str, BankProfile] = {
    "barclays": BankProfile(
        "barclays", "Barclays", "developer.barclays.com portal, or DCR for eIDAS TPPs", 30, True,
        notes="Separate authorization endpoints for Barclays and Barclaycard; private_key_jwt, PS256."),
    "hsbc": BankProfile(
        "hsbc", "HSBC", "DCR only: https://api.ob.hsbc.co.uk/obie/open-banking/v3.2/oauth2/register", 60, True,
        notes="Separate Business and Retail registrations; only private_key_jwt; balances INTERIMBOOKED/AVAILABLE."),
    "lloyds": BankProfile(
        "lloyds", "Lloyds", "DCR: https://secure-api.lloydsbank.com/prod01/lbg/dcr-api/v1.0/register", 90 * 24 * 60,
        False, extra_headers={"x-lbg-channel": "RC"},
        notes="mTLS token endpoint; nonce at most 8 characters; no refresh token (90-day access token)."),
    "natwest": BankProfile(
        "natwest", "NatWest", "DCR: https://api.natwest.com/register/v1.0 (IP allow-listing)", 5, True,
        consent_get_supported=False,
        notes="Access token 5 minutes plus refresh; consent lasts 90 days; GET on a consent returns 404."),
    "sandbox": BankProfile("sandbox", "CareHub sandbox bank", "POST /_sandbox/ob/register-client", 30, True),
}


def profile_for(environment: str | None) -> BankProfile | None:
    """The profile of a connection's environment (``barclays``, ``hsbc``, ``lloyds``, ``natwest``, ``sandbox``)."""
    return PROFILES.get(str(environment or ""))
