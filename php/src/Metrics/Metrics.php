<?php

/**
 * Owns the application-metrics client of the PHP kit: the `metrics.*` RPC calls (PROTOCOL.md §6.5)
 * over the kit's Goridge RPC client, with the JSON shapes RoadRunner's PHP library sends:
 *
 *   metrics.Declare    {"name":…,"collector":{"namespace","subsystem","type","help","labels","buckets"}}
 *   metrics.Add/Sub/Observe/Set   {"name":…,"value":…,"labels":[…]}
 *   metrics.Unregister "name"
 *
 *   $metrics = Metrics::create();                       // RR_RPC, tcp://127.0.0.1:6001 when unset
 *   $metrics->declare('app_requests', Collector::counter()->withHelp('Requests')->withLabels('method'));
 *   $metrics->add('app_requests', 1, ['GET']);
 *
 * Calls that fail on the connection are retried (3 times, 50 µs apart by default, as RoadRunner's
 * library does); a refusal by the server is not retried and throws MetricsException with its text.
 */

declare(strict_types=1);

namespace RRGrpc\Metrics;

use RRGrpc\Environment;
use RRGrpc\RPC\RPC;
use RRGrpc\RPC\RPCException;
use RRGrpc\RPC\ServiceException;

final class Metrics
{
    private readonly RPC $rpc;

    public function __construct(RPC $rpc, private readonly int $retries = 3, private readonly int $retryMicros = 50)
    {
        $this->rpc = $rpc->withServicePrefix('metrics');
    }

    /** A client on the server's RPC endpoint (RR_RPC, or the given address). */
    public static function create(?string $address = null): self
    {
        try {
            return new self(RPC::create($address ?? Environment::fromGlobals()->getRPCAddress()));
        } catch (RPCException $e) {
            throw new MetricsException($e->getMessage(), 0, $e);
        }
    }

    /**
     * Register a collector. Declaring a name that already exists succeeds (current servers answer
     * true; older ones sent "tried to register existing collector", which is treated the same).
     */
    public function declare(string $name, Collector $collector): void
    {
        try {
            $this->call('declare', ['name' => $name, 'collector' => $collector->toArray()]);
        } catch (MetricsException $e) {
            if (!\str_contains($e->getMessage(), 'tried to register existing collector')) {
                throw $e;
            }
        }
    }

    /** @param list<string> $labels label values, in the declared order */
    public function add(string $name, float $value, array $labels = []): void
    {
        $this->call('add', self::metric($name, $value, $labels));
    }

    /** Gauges only. @param list<string> $labels */
    public function sub(string $name, float $value, array $labels = []): void
    {
        $this->call('sub', self::metric($name, $value, $labels));
    }

    /** Histograms and summaries. @param list<string> $labels */
    public function observe(string $name, float $value, array $labels = []): void
    {
        $this->call('observe', self::metric($name, $value, $labels));
    }

    /** Gauges only. @param list<string> $labels */
    public function set(string $name, float $value, array $labels = []): void
    {
        $this->call('set', self::metric($name, $value, $labels));
    }

    /** @return bool false when the server's registry no longer knew the collector */
    public function unregister(string $name): bool
    {
        return (bool)$this->call('unregister', $name);
    }

    /** @param list<string> $labels */
    private static function metric(string $name, float $value, array $labels): array
    {
        return ['name' => $name, 'value' => $value, 'labels' => \array_values($labels)];
    }

    private function call(string $method, mixed $payload): mixed
    {
        $attempt = 0;
        while (true) {
            try {
                return $this->rpc->call($method, $payload);
            } catch (ServiceException $e) {
                throw new MetricsException($e->serverMessage, 0, $e);
            } catch (RPCException $e) {
                if (++$attempt > $this->retries) {
                    throw new MetricsException($e->getMessage(), 0, $e);
                }
                \usleep($this->retryMicros);
            }
        }
    }
}
