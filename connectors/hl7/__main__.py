"""Run the HL7 v2 MLLP listener: ``python -m connectors.hl7 --port 2575 --spool /var/lib/carehub/hl7``.

Each accepted ORU^R01 is written to the spool folder (fsynced) before its ACK is sent; the ``hl7_lab``
connector's sync runs then read the spool. Stop with Ctrl+C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from connectors.hl7.mllp import MllpListener
from connectors.hl7.spool import Spool


async def serve(host: str, port: int, spool_dir: str) -> None:
    """Listen until cancelled."""
    spool = Spool(spool_dir)
    listener = MllpListener(spool.store, host=host, port=port)
    await listener.start()
    logging.getLogger(__name__).info("MLLP listener on %s:%s, spooling to %s", host, listener.port, spool_dir)
    try:
        await asyncio.Event().wait()
    finally:
        await listener.stop()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m connectors.hl7", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - the lab's engine connects from the trust network
    parser.add_argument("--port", type=int, default=2575)
    parser.add_argument("--spool", required=True, help="folder for received messages")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.spool))


if __name__ == "__main__":
    main()
