<?php

/**
 * Owns the socket relays (PROTOCOL.md §2.4): the worker connects to the server's tcp or unix listener,
 * lazily on first use, retrying a few times while the listener comes up.
 */

declare(strict_types=1);

namespace RRGrpc\Goridge;

final class SocketRelay extends Relay
{
    public const CONNECT_ATTEMPTS = 10;
    public const CONNECT_PAUSE_US = 20_000;

    /** @var resource|null */
    private mixed $socket = null;

    /**
     * @param string $address host name/IP for tcp (with $port), or a unix socket path (no $port)
     */
    public function __construct(
        private readonly string $address,
        private readonly ?int $port = null,
        private readonly float $connectTimeout = 5.0,
    ) {
    }

    public function uri(): string
    {
        return $this->port === null ? 'unix://' . $this->address : 'tcp://' . $this->address . ':' . $this->port;
    }

    public function isPipe(): bool
    {
        return false;
    }

    public function isConnected(): bool
    {
        return $this->socket !== null;
    }

    public function connect(): void
    {
        if ($this->socket !== null) {
            return;
        }
        $error = '';
        for ($attempt = 1; $attempt <= self::CONNECT_ATTEMPTS; $attempt++) {
            $sock = @\stream_socket_client($this->uri(), $errno, $errstr, $this->connectTimeout);
            if ($sock !== false) {
                \stream_set_blocking($sock, true);
                \stream_set_timeout($sock, 0x7FFFFFFF);
                $this->socket = $sock;
                return;
            }
            $error = "$errstr ($errno)";
            \usleep(self::CONNECT_PAUSE_US * $attempt);
        }
        throw new RelayException(\sprintf(
            'cannot connect to %s after %d attempts: %s',
            $this->uri(),
            self::CONNECT_ATTEMPTS,
            $error,
        ));
    }

    protected function input(): mixed
    {
        $this->connect();
        return $this->socket;
    }

    protected function output(): mixed
    {
        $this->connect();
        return $this->socket;
    }

    public function close(): void
    {
        if ($this->socket !== null) {
            \fclose($this->socket);
            $this->socket = null;
        }
    }

    public function __destruct()
    {
        $this->close();
    }
}
