"""Registration: optimise a pose so that a pose similarity between a volume and an X-ray is best.

* `pose_descent`: gradient descent on a pose similarity's pose gradient (stage 1 of ProST).
"""

from xrender.registration.descent import DescentResult, pose_descent

__all__ = ["DescentResult", "pose_descent"]
