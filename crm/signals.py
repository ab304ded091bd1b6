"""Events other features react to (zones, callbacks and leads go back to the supervisor)."""
from blinker import Namespace

_signals = Namespace()

#: sender=User, supervisor_id=the supervisor they had (None if none).
user_deactivated = _signals.signal("user-deactivated")
#: sender=User (the agent), old_supervisor_id=…, new_supervisor_id=…
agent_moved = _signals.signal("agent-moved")
#: sender=User, supervisor_id=the supervisor they worked for, reason="deactivated" | "moved" | "role_changed".
#: Sent whenever someone stops working as that supervisor's agent: their zones, callbacks
#: and open leads go back to that supervisor (their contracts keep theirs).
agent_released = _signals.signal("agent-released")
