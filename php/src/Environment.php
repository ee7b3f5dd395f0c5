<?php

/**
 * Owns the worker environment (PROTOCOL.md §8): RR_RELAY, RR_RPC, RR_MODE and RR_VERSION with the
 * defaults RoadRunner's PHP libraries use.
 */

declare(strict_types=1);

namespace RRGrpc;

final class Environment
{
    public const DEFAULT_RELAY = 'pipes';
    public const DEFAULT_RPC = 'tcp://127.0.0.1:6001';

    /**
     * @param array<string, mixed> $env
     */
    public function __construct(private readonly array $env = [])
    {
    }

    /** Read the process environment ($_ENV, $_SERVER and getenv(); $_SERVER wins over $_ENV). */
    public static function fromGlobals(): self
    {
        $env = \array_merge(\getenv(), $_ENV, $_SERVER);
        return new self($env);
    }

    public function get(string $name, string $default = ''): string
    {
        $value = $this->env[$name] ?? null;
        return \is_scalar($value) && (string)$value !== '' ? (string)$value : $default;
    }

    /** Relay address of the worker channel: `pipes`, `tcp://host:port` or `unix://path`. */
    public function getRelayAddress(): string
    {
        return $this->get('RR_RELAY', self::DEFAULT_RELAY);
    }

    /** Address of the server's RPC endpoint. */
    public function getRPCAddress(): string
    {
        return $this->get('RR_RPC', self::DEFAULT_RPC);
    }

    /** Which plugin runs this worker: `grpc`, `http`, ... ("" outside rrgrpc/RoadRunner). */
    public function getMode(): string
    {
        return $this->get('RR_MODE');
    }

    public function getVersion(): string
    {
        return $this->get('RR_VERSION');
    }
}
