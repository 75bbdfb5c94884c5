-- Enum types used by "TaskRun" and task_run_v2 (trigger.dev's Prisma schema).
-- Idempotent, so the quickstart and the tests can apply it to an existing database.
DO $$ BEGIN
  CREATE TYPE "RunEngineVersion" AS ENUM ('V1', 'V2');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

DO $$ BEGIN
  CREATE TYPE "TaskRunStatus" AS ENUM (
    'DELAYED', 'PENDING', 'PENDING_VERSION', 'WAITING_FOR_DEPLOY', 'DEQUEUED', 'EXECUTING',
    'WAITING_TO_RESUME', 'RETRYING_AFTER_FAILURE', 'PAUSED', 'CANCELED', 'INTERRUPTED',
    'COMPLETED_SUCCESSFULLY', 'COMPLETED_WITH_ERRORS', 'SYSTEM_FAILURE', 'CRASHED', 'EXPIRED',
    'TIMED_OUT');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

DO $$ BEGIN
  CREATE TYPE "RuntimeEnvironmentType" AS ENUM ('PRODUCTION', 'STAGING', 'DEVELOPMENT', 'PREVIEW');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
