"""What an applet is to the card runtime.

An applet's persistent state is an immutable value (a frozen dataclass). A command returns a
``Reply``; when it carries a new state the runtime commits it atomically *before* the response
leaves the card, so a response is only ever seen for a committed change. Transient state (the
open INITIALIZE session, a verified PIN) lives in the applet object and is lost on reset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from paycore.apdu import CommandApdu
from paycore.sw import SW

if TYPE_CHECKING:
    from card_applet_sim.domain.image import Instance

RandomSource = Callable[[int], bytes]
JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    sw: int
    data: bytes = b""
    #: The applet's new persistent state, to be committed with the response; None = unchanged.
    state: object | None = None
    #: Card content management only (a ``ContentManager``, ota.md §1): the card's whole new
    #: instance tuple (the manager's own new state included), committed as one image in place
    #: of ``state``; instances may appear, disappear or change. None = unchanged.
    instances: tuple[Instance, ...] | None = None


def status(sw: int) -> Reply:
    return Reply(sw)


OK_EMPTY = Reply(SW.OK)


@dataclass(frozen=True, slots=True)
class SelectReply:
    reply: Reply
    #: Whether the applet is now the channel's selected applet (a locked wallet stays selected
    #: and answers 9303; a blocked one refuses selection with 6999).
    selected: bool


class Applet(Protocol):
    """One applet instance on a card, with its transient state."""

    def select(self, state: Any) -> SelectReply: ...

    def deselect(self) -> None:
        """Drop transient state bound to the selection (sessions, verified PIN)."""
        ...

    def process(self, state: Any, apdu: CommandApdu) -> Reply: ...


class ContentManager(Applet, Protocol):
    """An applet that manages the card's content: the issuer security domain (ota.md §1). The
    runtime hands it the card's instances with each command; its Reply may carry a new
    instance tuple (INSTALL, DELETE, STORE DATA into another applet, SET STATUS)."""

    def process_content(
        self, state: Any, apdu: CommandApdu, instances: tuple[Instance, ...]
    ) -> Reply: ...

    def admits(self, state: Any, aid: bytes) -> bool:
        """Whether the applet ``aid`` may be selected now (not once the card is locked)."""
        ...


@dataclass(frozen=True, slots=True)
class AppletType:
    """The class side of an applet: its name in the card image, the FID of its DF (if it can
    be selected by FID), the factory of instances and the codec of its persistent state."""

    type_name: str
    fid: int | None
    factory: Callable[[bytes, RandomSource], Applet]
    state_to_json: Callable[[Any], JsonObject]
    state_from_json: Callable[[Mapping[str, Any]], object]
    #: True for a ContentManager type (at most one instance per card).
    manages_content: bool = False
