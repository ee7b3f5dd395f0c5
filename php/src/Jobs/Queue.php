<?php

/**
 * Owns the producer side of one pipeline (PROTOCOL.md §8a.1), as spiral/roadrunner-jobs' Queue:
 * push($name, $payload, $options) = create() + dispatch() (jobs.Push), dispatchMany() (jobs.PushBatch),
 * pause(), resume(), isPaused() and getPipelineStat() (jobs.Stat). Every task gets a random UUID v4 id.
 */

declare(strict_types=1);

namespace RRGrpc\Jobs;

use RoadRunner\Jobs\DTO\V1\HeaderValue;
use RoadRunner\Jobs\DTO\V1\Job;
use RoadRunner\Jobs\DTO\V1\Options as OptionsMessage;
use RoadRunner\Jobs\DTO\V1\Pipelines;
use RoadRunner\Jobs\DTO\V1\PushBatchRequest;
use RoadRunner\Jobs\DTO\V1\PushRequest;
use RoadRunner\Jobs\DTO\V1\Stat;
use RoadRunner\Jobs\DTO\V1\Stats;
use RRGrpc\RPC\RPC;

final class Queue
{
    use CallsJobs;

    public function __construct(
        private readonly string $name,
        RPC $rpc,
        private readonly Options $options = new Options(),
    ) {
        $this->rpc = $rpc;
    }

    public function getName(): string
    {
        return $this->name;
    }

    public function getDefaultOptions(): Options
    {
        return $this->options;
    }

    public function create(string $name, string|\Stringable $payload, ?Options $options = null): PreparedTask
    {
        return new PreparedTask($name, (string)$payload, $options ?? $this->options);
    }

    /** @throws JobsException */
    public function push(string $name, string|\Stringable $payload, ?Options $options = null): QueuedTask
    {
        return $this->dispatch($this->create($name, $payload, $options));
    }

    /** @throws JobsException */
    public function dispatch(PreparedTask $task): QueuedTask
    {
        [$job, $queued] = $this->toJob($task);
        $this->call('jobs.Push', new PushRequest(['job' => $job]));
        return $queued;
    }

    /**
     * @return list<QueuedTask>
     * @throws JobsException
     */
    public function dispatchMany(PreparedTask ...$tasks): array
    {
        $jobs = $queued = [];
        foreach ($tasks as $task) {
            [$jobs[], $queued[]] = $this->toJob($task);
        }
        $this->call('jobs.PushBatch', new PushBatchRequest(['jobs' => $jobs]));
        return $queued;
    }

    public function pause(): void
    {
        $this->call('jobs.Pause', new Pipelines(['pipelines' => [$this->name]]));
    }

    public function resume(): void
    {
        $this->call('jobs.Resume', new Pipelines(['pipelines' => [$this->name]]));
    }

    public function isPaused(): bool
    {
        $stat = $this->getPipelineStat();
        return $stat !== null && !$stat->getReady();
    }

    public function getPipelineStat(): ?Stat
    {
        /** @var Stats $stats */
        $stats = $this->call('jobs.Stat', new \RoadRunner\Jobs\DTO\V1\PBEmpty(), Stats::class);
        foreach ($stats->getStats() as $stat) {
            if ($stat->getPipeline() === $this->name) {
                return $stat;
            }
        }
        return null;
    }

    /** @return array{Job, QueuedTask} */
    private function toJob(PreparedTask $task): array
    {
        $id = self::uuid4();
        $headers = [];
        foreach ($task->getHeaders() as $key => $values) {
            $headers[$key] = new HeaderValue(['value' => $values]);
        }
        $o = $task->getOptions();
        $job = new Job([
            'job' => $task->getName(),
            'id' => $id,
            'payload' => $task->getPayload(),
            'headers' => $headers,
            'options' => new OptionsMessage([
                'priority' => $o->getPriority(),
                'pipeline' => $this->name,
                'delay' => $o->getDelay(),
                'auto_ack' => $o->getAutoAck(),
            ]),
        ]);
        return [$job, new QueuedTask($id, $this->name, $task->getName(), $task->getPayload(), $task->getHeaders())];
    }

    private static function uuid4(): string
    {
        $b = \random_bytes(16);
        $b[6] = \chr((\ord($b[6]) & 0x0f) | 0x40);
        $b[8] = \chr((\ord($b[8]) & 0x3f) | 0x80);
        return \vsprintf('%s%s-%s-%s-%s-%s%s%s', \str_split(\bin2hex($b), 4));
    }
}
