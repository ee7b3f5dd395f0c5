<?php

/**
 * The relay abstraction (PROTOCOL.md §2.3–2.5): owns frame-level I/O over stream resources and the
 * address grammar of Relay::create() ("pipes", "tcp://host:port", "unix://path", "pipes://in:out").
 */

declare(strict_types=1);

namespace RRGrpc\Goridge;

abstract class Relay
{
    /** The resource frames are read from. */
    abstract protected function input(): mixed;

    /** The resource frames are written to. */
    abstract protected function output(): mixed;

    /** True for blocking pipe relays (the only ones on which streamed responses PING the server). */
    abstract public function isPipe(): bool;

    abstract public function close(): void;

    /**
     * Build a relay from an address: `pipes` (STDIN/STDOUT), `tcp://host:port`, `unix://path` or
     * `pipes://in:out` (php://in and php://out streams).
     */
    public static function create(string $address): self
    {
        if ($address === 'pipes') {
            return new StreamRelay(\STDIN, \STDOUT);
        }
        if (!\preg_match('#^([a-z]+)://([^:]+)(?::([^:]+))?$#', $address, $m)) {
            throw new RelayException("invalid relay address `$address` (want pipes, tcp://host:port or unix://path)");
        }
        $arg2 = $m[3] ?? '';
        switch ($m[1]) {
            case 'pipes':
                $in = \fopen('php://' . $m[2], 'rb');
                $out = \fopen('php://' . ($arg2 !== '' ? $arg2 : 'stdout'), 'wb');
                if ($in === false || $out === false) {
                    throw new RelayException("cannot open the streams of relay `$address`");
                }
                return new StreamRelay($in, $out);
            case 'tcp':
                if ($arg2 === '' || !\ctype_digit($arg2)) {
                    throw new RelayException("relay address `$address` needs a numeric port");
                }
                return new SocketRelay(\strtolower($m[2]), (int)$arg2);
            case 'unix':
                if ($arg2 !== '') {
                    throw new RelayException("unix relay path `$address` must not contain a colon");
                }
                return new SocketRelay($m[2]);
        }
        throw new RelayException("unknown relay protocol `{$m[1]}` in `$address`");
    }

    public function send(Frame $frame): void
    {
        $bytes = $frame->encode();
        $out = $this->output();
        $total = \strlen($bytes);
        $done = 0;
        while ($done < $total) {
            $n = @\fwrite($out, $done === 0 ? $bytes : \substr($bytes, $done));
            if ($n === false || $n === 0) {
                throw new RelayException(\sprintf('write failed after %d of %d bytes', $done, $total));
            }
            $done += $n;
        }
        \fflush($out);
    }

    /**
     * Block until one whole frame has arrived.
     *
     * @throws RelayClosedException when the peer closed the relay between frames
     * @throws RelayException on a short read inside a frame or a malformed header
     */
    public function receive(): Frame
    {
        $in = $this->input();
        $head = $this->readExactly($in, Frame::HEADER_SIZE, true);
        $h = Frame::decodeHeader($head);
        $optSize = 4 * ($h['hl'] - 3);
        $rest = $optSize + $h['length'] > 0 ? $this->readExactly($in, $optSize + $h['length']) : '';
        if ($optSize === 0) {
            return new Frame($rest, $h['flags'], [], $h['byte10']);
        }
        return new Frame(
            (string)\substr($rest, $optSize),
            $h['flags'],
            Frame::decodeOptions(\substr($rest, 0, $optSize)),
            $h['byte10'],
        );
    }

    /** True when input is readable within $timeout seconds (0 = just look). */
    public function hasFrame(float $timeout = 0.0): bool
    {
        $read = [$this->input()];
        $write = $except = null;
        $sec = (int)\floor($timeout);
        $usec = (int)(($timeout - $sec) * 1e6);
        $n = @\stream_select($read, $write, $except, $sec, $usec);
        if ($n === false) {
            throw new RelayException('stream_select() failed on the relay');
        }
        return $n > 0;
    }

    private function readExactly(mixed $in, int $size, bool $atFrameStart = false): string
    {
        $buf = '';
        while (\strlen($buf) < $size) {
            $chunk = @\fread($in, $size - \strlen($buf));
            if ($chunk === false || ($chunk === '' && \feof($in))) {
                if ($atFrameStart && $buf === '') {
                    throw new RelayClosedException('relay closed by the peer');
                }
                throw new RelayException(\sprintf('relay closed: got %d of %d bytes', \strlen($buf), $size));
            }
            $buf .= $chunk;
        }
        return $buf;
    }
}
