<?php

/**
 * Owns the description of one application metric for `metrics.Declare` (PROTOCOL.md §6.5): the
 * `collector` object of the call, `{"namespace","subsystem","type","help","labels","buckets"}`.
 *
 *   $metrics->declare('app_requests', Collector::counter()->withHelp('Requests')->withLabels('method'));
 */

declare(strict_types=1);

namespace RRGrpc\Metrics;

final class Collector
{
    public const COUNTER = 'counter';
    public const GAUGE = 'gauge';
    public const HISTOGRAM = 'histogram';
    public const SUMMARY = 'summary';

    /**
     * @param list<string> $labels label names; non-empty makes a labelled ("vector") metric
     * @param list<float>  $buckets histogram buckets (empty: the server's defaults)
     */
    private function __construct(
        public readonly string $type,
        public readonly string $namespace = '',
        public readonly string $subsystem = '',
        public readonly string $help = '',
        public readonly array $labels = [],
        public readonly array $buckets = [],
    ) {
    }

    public static function counter(): self
    {
        return new self(self::COUNTER);
    }

    public static function gauge(): self
    {
        return new self(self::GAUGE);
    }

    public static function histogram(float ...$buckets): self
    {
        return new self(self::HISTOGRAM, buckets: \array_values($buckets));
    }

    public static function summary(): self
    {
        return new self(self::SUMMARY);
    }

    public function withNamespace(string $namespace): self
    {
        return new self($this->type, $namespace, $this->subsystem, $this->help, $this->labels, $this->buckets);
    }

    public function withSubsystem(string $subsystem): self
    {
        return new self($this->type, $this->namespace, $subsystem, $this->help, $this->labels, $this->buckets);
    }

    public function withHelp(string $help): self
    {
        return new self($this->type, $this->namespace, $this->subsystem, $help, $this->labels, $this->buckets);
    }

    public function withLabels(string ...$labels): self
    {
        return new self($this->type, $this->namespace, $this->subsystem, $this->help, \array_values($labels), $this->buckets);
    }

    /** The `collector` object as it travels in `metrics.Declare`, keys in the server's order. */
    public function toArray(): array
    {
        return [
            'namespace' => $this->namespace,
            'subsystem' => $this->subsystem,
            'type' => $this->type,
            'help' => $this->help,
            'labels' => $this->labels,
            'buckets' => $this->buckets,
        ];
    }
}
