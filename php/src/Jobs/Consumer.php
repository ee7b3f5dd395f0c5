<?php

/**
 * Owns the consumer loop of an RR_MODE=jobs worker: waitTask() reads the next task frame and returns
 * it as a ReceivedTask (null when the server asks the worker to stop), as spiral/roadrunner-jobs'
 * Consumer does.
 *
 *   $consumer = new Consumer();
 *   while ($task = $consumer->waitTask()) {
 *       try { handle($task->getName(), $task->getPayload()); $task->complete(); }
 *       catch (\Throwable $e) { $task->fail($e, requeue: true); }
 *   }
 */

declare(strict_types=1);

namespace RRGrpc\Jobs;

use RRGrpc\Worker\Worker;

final class Consumer
{
    private readonly Worker $worker;

    public function __construct(?Worker $worker = null)
    {
        $this->worker = $worker ?? Worker::create();
    }

    public function getWorker(): Worker
    {
        return $this->worker;
    }

    /** @throws JobsException when the task context is not the JSON object the server sends */
    public function waitTask(): ?ReceivedTask
    {
        $payload = $this->worker->waitPayload();
        if ($payload === null) {
            return null;
        }
        try {
            $ctx = \json_decode($payload->header, true, 512, \JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new JobsException("invalid task context: {$e->getMessage()}", 0, $e);
        }
        if (!\is_array($ctx) || !isset($ctx['id'], $ctx['job'], $ctx['pipeline'])) {
            throw new JobsException('invalid task context: id, job and pipeline are required');
        }
        return new ReceivedTask(
            $this->worker,
            (string)$ctx['id'],
            (string)($ctx['driver'] ?? ''),
            (string)$ctx['pipeline'],
            (string)$ctx['job'],
            (string)($ctx['queue'] ?? $ctx['pipeline']),
            $payload->body,
            \is_array($ctx['headers'] ?? null) ? $ctx['headers'] : [],
        );
    }
}
