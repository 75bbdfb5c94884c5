-- The legacy runs table.
-- Columns and types as in trigger.dev's migrations (upstream-trigger-dev.md §4). Idempotent.
CREATE TABLE IF NOT EXISTS public."TaskRun" (
    "id" TEXT NOT NULL,
    "number" INTEGER NOT NULL DEFAULT 0,
    "friendlyId" TEXT NOT NULL,
    "engine" "RunEngineVersion" NOT NULL DEFAULT 'V1',
    "status" "TaskRunStatus" NOT NULL DEFAULT 'PENDING',
    "statusReason" TEXT,
    "idempotencyKey" TEXT,
    "idempotencyKeyExpiresAt" TIMESTAMP(3),
    "idempotencyKeyOptions" JSONB,
    "debounce" JSONB,
    "taskIdentifier" TEXT NOT NULL,
    "isTest" BOOLEAN NOT NULL DEFAULT false,
    "payload" TEXT NOT NULL,
    "payloadType" TEXT NOT NULL DEFAULT 'application/json',
    "context" JSONB,
    "traceContext" JSONB,
    "traceId" TEXT NOT NULL,
    "spanId" TEXT NOT NULL,
    "runtimeEnvironmentId" TEXT NOT NULL,
    "environmentType" "RuntimeEnvironmentType",
    "projectId" TEXT NOT NULL,
    "organizationId" TEXT,
    "queue" TEXT NOT NULL,
    "lockedQueueId" TEXT,
    "masterQueue" TEXT NOT NULL DEFAULT 'main',
    "region" TEXT,
    "secondaryMasterQueue" TEXT,
    "attemptNumber" INTEGER,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    "runTags" TEXT[],
    "taskVersion" TEXT,
    "sdkVersion" TEXT,
    "cliVersion" TEXT,
    "startedAt" TIMESTAMP(3),
    "executedAt" TIMESTAMP(3),
    "completedAt" TIMESTAMP(3),
    "machinePreset" TEXT,
    "usageDurationMs" INTEGER NOT NULL DEFAULT 0,
    "costInCents" DOUBLE PRECISION NOT NULL DEFAULT 0,
    "baseCostInCents" DOUBLE PRECISION NOT NULL DEFAULT 0,
    "lockedAt" TIMESTAMP(3),
    "lockedById" TEXT,
    "lockedToVersionId" TEXT,
    "priorityMs" INTEGER NOT NULL DEFAULT 0,
    "concurrencyKey" TEXT,
    "delayUntil" TIMESTAMP(3),
    "queuedAt" TIMESTAMP(3),
    "ttl" TEXT,
    "expiredAt" TIMESTAMP(3),
    "maxAttempts" INTEGER,
    "lockedRetryConfig" JSONB,
    "oneTimeUseToken" TEXT,
    "taskEventStore" TEXT NOT NULL DEFAULT 'taskEvent',
    "queueTimestamp" TIMESTAMP(3),
    "scheduleInstanceId" TEXT,
    "scheduleId" TEXT,
    "bulkActionGroupIds" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "logsDeletedAt" TIMESTAMP(3),
    "replayedFromTaskRunFriendlyId" TEXT,
    "rootTaskRunId" TEXT,
    "parentTaskRunId" TEXT,
    "parentTaskRunAttemptId" TEXT,
    "batchId" TEXT,
    "resumeParentOnCompletion" BOOLEAN NOT NULL DEFAULT false,
    "depth" INTEGER NOT NULL DEFAULT 0,
    "parentSpanId" TEXT,
    "runChainState" JSONB,
    "seedMetadata" TEXT,
    "seedMetadataType" TEXT NOT NULL DEFAULT 'application/json',
    "metadata" TEXT,
    "metadataType" TEXT NOT NULL DEFAULT 'application/json',
    "metadataVersion" INTEGER NOT NULL DEFAULT 1,
    "annotations" JSONB,
    "isWarmStart" BOOLEAN,
    "output" TEXT,
    "outputType" TEXT NOT NULL DEFAULT 'application/json',
    "error" JSONB,
    "planType" TEXT,
    "maxDurationInSeconds" INTEGER,
    "realtimeStreamsVersion" TEXT NOT NULL DEFAULT 'v1',
    "realtimeStreams" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "streamBasinName" TEXT,
    CONSTRAINT "TaskRun_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX IF NOT EXISTS "TaskRun_friendlyId_key" ON public."TaskRun" ("friendlyId");
CREATE UNIQUE INDEX IF NOT EXISTS "TaskRun_oneTimeUseToken_key" ON public."TaskRun" ("oneTimeUseToken");
CREATE UNIQUE INDEX IF NOT EXISTS "TaskRun_runtimeEnvironmentId_taskIdentifier_idempotencyKey_key"
    ON public."TaskRun" ("runtimeEnvironmentId", "taskIdentifier", "idempotencyKey");
CREATE INDEX IF NOT EXISTS "TaskRun_parentTaskRunId_idx" ON public."TaskRun" ("parentTaskRunId");
CREATE INDEX IF NOT EXISTS "TaskRun_spanId_idx" ON public."TaskRun" ("spanId");
CREATE INDEX IF NOT EXISTS "TaskRun_parentSpanId_idx" ON public."TaskRun" ("parentSpanId");
CREATE INDEX IF NOT EXISTS "TaskRun_runTags_idx" ON public."TaskRun" USING GIN ("runTags");
CREATE INDEX IF NOT EXISTS "TaskRun_runtimeEnvironmentId_batchId_idx" ON public."TaskRun" ("runtimeEnvironmentId", "batchId");
CREATE INDEX IF NOT EXISTS "TaskRun_runtimeEnvironmentId_createdAt_idx" ON public."TaskRun" ("runtimeEnvironmentId", "createdAt" DESC);
CREATE INDEX IF NOT EXISTS "TaskRun_createdAt_idx" ON public."TaskRun" USING BRIN ("createdAt");

-- UPDATE and DELETE must carry the whole old row: tombstones need organizationId, environmentType
-- and createdAt, and unchanged TOASTed values (output, payload, error) are filled from it.
ALTER TABLE public."TaskRun" REPLICA IDENTITY FULL;
