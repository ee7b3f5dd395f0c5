<?php

/**
 * Owns the jobs client of the PHP kit (PROTOCOL.md §8a.1), with spiral/roadrunner-jobs' names:
 * connect($pipeline) gives a Queue to push to; create($info) declares a pipeline at run time
 * (jobs.Declare: name, driver and the driver's keys, sent as strings) and connects to it;
 * pause()/resume() take names or queues; iterating lists the pipelines (jobs.List). destroy() is
 * an addition (the RPC exists; the real client has no method for it).
 *
 *   $queue = (new Jobs())->connect('emails');           // RR_RPC from the environment
 *   $queue->push('App\\Jobs\\Mail', json_encode($mail), (new Options())->withDelay(60));
 *
 * @implements \IteratorAggregate<string, Queue>
 */

declare(strict_types=1);

namespace RRGrpc\Jobs;

use RoadRunner\Jobs\DTO\V1\DeclareRequest;
use RoadRunner\Jobs\DTO\V1\PBEmpty;
use RoadRunner\Jobs\DTO\V1\Pipelines;
use RRGrpc\Environment;
use RRGrpc\RPC\RPC;

final class Jobs implements \IteratorAggregate, \Countable
{
    use CallsJobs;

    public function __construct(?RPC $rpc = null)
    {
        $this->rpc = $rpc ?? RPC::create(Environment::fromGlobals()->getRPCAddress());
    }

    public function connect(string $queue, ?Options $options = null): Queue
    {
        return new Queue($queue, $this->rpc, $options ?? new Options());
    }

    /**
     * Declare a pipeline: ['name' => 'p', 'driver' => 'memory', 'priority' => 10, 'prefetch' => 100, ...].
     *
     * @param array<string, scalar|array<mixed>> $pipeline
     * @throws JobsException
     */
    public function create(array $pipeline, ?Options $options = null): Queue
    {
        $strings = [];
        foreach ($pipeline as $key => $value) {
            $strings[$key] = match (true) {
                \is_bool($value) => $value ? 'true' : 'false',
                \is_array($value) => \json_encode($value, \JSON_THROW_ON_ERROR),
                default => (string)$value,
            };
        }
        $this->call('jobs.Declare', new DeclareRequest(['pipeline' => $strings]));
        return $this->connect((string)($pipeline['name'] ?? ''), $options);
    }

    public function pause(string|Queue $queue, string|Queue ...$queues): void
    {
        $this->call('jobs.Pause', new Pipelines(['pipelines' => self::names($queue, ...$queues)]));
    }

    public function resume(string|Queue $queue, string|Queue ...$queues): void
    {
        $this->call('jobs.Resume', new Pipelines(['pipelines' => self::names($queue, ...$queues)]));
    }

    /**
     * @return list<string> the pipelines destroyed
     * @throws JobsException
     */
    public function destroy(string|Queue $queue, string|Queue ...$queues): array
    {
        $names = self::names($queue, ...$queues);
        /** @var Pipelines $done */
        $done = $this->call('jobs.Destroy', new Pipelines(['pipelines' => $names]), Pipelines::class);
        return \iterator_to_array($done->getPipelines(), false);
    }

    /** @return \Traversable<string, Queue> */
    public function getIterator(): \Traversable
    {
        /** @var Pipelines $list */
        $list = $this->call('jobs.List', new PBEmpty(), Pipelines::class);
        foreach ($list->getPipelines() as $name) {
            yield $name => $this->connect($name);
        }
    }

    public function count(): int
    {
        return \iterator_count($this->getIterator());
    }

    /** @return list<string> */
    private static function names(string|Queue ...$queues): array
    {
        return \array_map(static fn (string|Queue $q): string => $q instanceof Queue ? $q->getName() : $q, $queues);
    }
}
