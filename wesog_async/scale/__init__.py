"""Scale-out: one ingestion spread over many worker processes and machines.

A *job* is a set of shards (input files, or line / byte ranges of one large
file) recorded in a PostgreSQL database, with one journal per shard in the
same database. Workers (``wesog-async worker``, :func:`run_worker`, or the
taskiq task of :mod:`wesog_async.scale.taskiq`) claim shards with a lease,
ingest each one as an ordinary journaled ingestion, and take over shards
whose worker died; a cool-down on 429 is shared through the database.

Needs the ``postgres`` extra (asyncpg); the taskiq integration the ``taskiq``
extra. Modules: :mod:`.shards` (planning and reading), :mod:`.db` (tables),
:mod:`.jobs` (create, status), :mod:`.leases`, :mod:`.cooldown`,
:mod:`.worker`, :mod:`.taskiq`.
"""

from wesog_async.scale.db import connect
from wesog_async.scale.jobs import JobExistsError, JobSpec, JobStatus, create_job, job_status
from wesog_async.scale.leases import LeaseLostError
from wesog_async.scale.shards import ShardSpec, open_shard, plan_shards
from wesog_async.scale.worker import ShardError, WorkerReport, run_worker

__all__ = [
    "JobExistsError",
    "JobSpec",
    "JobStatus",
    "LeaseLostError",
    "ShardError",
    "ShardSpec",
    "WorkerReport",
    "connect",
    "create_job",
    "job_status",
    "open_shard",
    "plan_shards",
    "run_worker",
]
