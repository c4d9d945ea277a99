"""The weekly digest: what a week cost and why, for the organisation and for each owner team.

``build.build_digest`` computes the data (``model.Digest``); ``charts``, ``render``, ``email``,
``chat`` turn it into PNG charts, HTML + text, an email with inline images, a Slack message and a
Teams card; ``files`` writes them (``--out``, the archive); ``send`` bundles the payloads for the
delivery stage's transports and ``deliver`` sends each audience's digest once per receiver and
week; ``job`` is the daemon's weekly run.
"""

from costguard.digest.build import DigestInputs, build_digest
from costguard.digest.model import Digest
from costguard.digest.weeks import IsoWeek, last_complete_week

__all__ = ["Digest", "DigestInputs", "IsoWeek", "build_digest", "last_complete_week"]
