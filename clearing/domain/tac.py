"""`clearing verify --issuer-keys`: recompute a completion's TAC from the issuer's master TAC
key (card.md §3) and compare the result with the verdict the host recorded when it applied the
0220 (clearing.md §5: clearing trusts the recorded verdict; this is the audit of it).

Purchase TAC = MAC(DTK_L xor DTK_R, amount ‖ type 06 ‖ terminal ID ‖ terminal serial ‖ date ‖
time), DTK = Div(MTK, ASN) (two levels with the key file's issuer factor). A load's TAC is
over the card's new balance, which the clearing view does not carry: loads and refunds are
counted as not re-verifiable, never guessed.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

from paycore import pboc
from paycore.issuer_keys import IssuerKeys

#: Mismatch lines kept for the report (the counts are always complete).
MISMATCH_LINES_MAX: Final = 1_000


class TacOutcome(StrEnum):
    AGREES = "agrees"  # the recomputed TAC gives the host's verdict
    MISMATCH = "mismatch"  # it gives the other verdict
    NO_KEY = "no_key"  # no key file for the card's issuer, or another key version
    NOT_VERIFIABLE = "not_verifiable"  # loads and refunds (no balance in the view)


@dataclass(frozen=True, slots=True)
class CompletionProof:
    """One completion as the clearing view shows it (docs/clearing-view.md)."""

    terminal_id: str
    batch_no: int
    stan: int
    rrn: str
    kind: str  # purchase | load | refund
    asn: str  # 16 digits
    issuer_id: str
    key_version: int
    amount_fen: int  # the completion's
    psam_terminal_id: str  # 12 hex digits (DF07)
    psam_serial: int  # DF08
    terminal_datetime: datetime  # DF09, the terminal's local clock
    tac: str  # 8 hex digits (DF0A)
    tac_verdict: str  # ok | bad, as the host recorded it


def _bcd(digits: str) -> bytes:
    return bytes.fromhex(digits)


def purchase_tac_ok(keys: IssuerKeys, proof: CompletionProof) -> bool:
    """Whether the purchase's TAC verifies under ``keys`` (card.md §3)."""
    try:
        asn, terminal_id = _bcd(proof.asn), bytes.fromhex(proof.psam_terminal_id)
        tac = bytes.fromhex(proof.tac)
    except ValueError:
        return False
    if len(asn) != 8 or len(terminal_id) != 6 or len(tac) != 4:
        return False
    when = proof.terminal_datetime
    purchase = pboc.Purchase(
        proof.amount_fen,
        terminal_id,
        proof.psam_serial,
        _bcd(f"{when:%Y%m%d}"),
        _bcd(f"{when:%H%M%S}"),
        pboc.TYPE_EP_PURCHASE,
    )
    dtk = pboc.card_key(keys.mtk, asn, keys.issuer_factor)
    return hmac.compare_digest(pboc.purchase_tac(dtk, purchase), tac)


def check(proof: CompletionProof, keys: dict[str, IssuerKeys]) -> TacOutcome:
    if proof.kind != "purchase":
        return TacOutcome.NOT_VERIFIABLE
    issuer = keys.get(proof.issuer_id)
    if issuer is None or issuer.key_version != proof.key_version:
        return TacOutcome.NO_KEY
    agrees = purchase_tac_ok(issuer, proof) == (proof.tac_verdict == "ok")
    return TacOutcome.AGREES if agrees else TacOutcome.MISMATCH


@dataclass
class TacReport:
    """Counts per outcome and the first ``MISMATCH_LINES_MAX`` mismatches, one line each."""

    counts: dict[TacOutcome, int] = field(default_factory=lambda: dict.fromkeys(TacOutcome, 0))
    mismatches: list[str] = field(default_factory=list)

    def add(self, proof: CompletionProof, outcome: TacOutcome) -> None:
        self.counts[outcome] += 1
        if outcome is TacOutcome.MISMATCH and len(self.mismatches) < MISMATCH_LINES_MAX:
            recomputed = "bad" if proof.tac_verdict == "ok" else "ok"
            self.mismatches.append(
                f"TAC {proof.terminal_id} batch {proof.batch_no} STAN {proof.stan} RRN "
                f"{proof.rrn}: the host recorded {proof.tac_verdict}, the issuer key gives "
                f"{recomputed}"
            )

    def summary(self) -> str:
        c = self.counts
        return (
            f"TACs re-verified: {c[TacOutcome.AGREES] + c[TacOutcome.MISMATCH]} "
            f"({c[TacOutcome.AGREES]} agree with the host, {c[TacOutcome.MISMATCH]} mismatch); "
            f"{c[TacOutcome.NO_KEY]} without a key file for their issuer and key version; "
            f"{c[TacOutcome.NOT_VERIFIABLE]} loads/refunds not re-verifiable (no balance in "
            "the view)"
        )
