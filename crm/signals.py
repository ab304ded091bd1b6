"""Events other features react to (zones, callbacks and leads go back to the supervisor)."""
from blinker import Namespace

_signals = Namespace()

#: sender=User (the agent), supervisor_id=the supervisor the agent had.
user_deactivated = _signals.signal("user-deactivated")
#: sender=User (the agent), old_supervisor_id=…, new_supervisor_id=…
agent_moved = _signals.signal("agent-moved")
