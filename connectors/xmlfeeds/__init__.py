"""XML routes for systems whose integration is a document, not a REST API.

* Indeed (direct employers): the XML job feed Indeed crawls (:mod:`.indeed_feed`, written by
  :class:`.sessions.IndeedSession`). Indeed Apply application POSTs, signed with ``X-Indeed-Signature``, are
  verified by the app's webhook receiver from the scheme in ``templates/connectors/indeed.yaml`` and land through
  the webhook-fed ``applications`` stream (``app.webhook_streams``).
* Jaggaer: cXML ``OrderRequest`` purchase orders dropped in a folder and ``ConfirmationRequest`` documents
  written back (:mod:`.cxml`).

Every document is parsed with defusedxml (:mod:`.safe`): entity declarations (billion laughs) and external
entities are refused with a clear error before any content is read.
"""
