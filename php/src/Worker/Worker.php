<?php

/**
 * Owns the worker side of the worker protocol (PROTOCOL.md §3): the pid handshake, waiting for
 * requests, replies, soft errors, the "please restart me" reply, streamed replies with PING/PONG and
 * stream STOP, and keeping stray `echo` output away from the STDOUT relay.
 */

declare(strict_types=1);

namespace RRGrpc\Worker;

use RRGrpc\Environment;
use RRGrpc\Goridge\Frame;
use RRGrpc\Goridge\Relay;
use RRGrpc\Goridge\RelayClosedException;
use RRGrpc\Goridge\RelayException;

final class Worker
{
    /** The exact context of the "please restart me" reply; the server compares it byte for byte. */
    public const STOP_CONTEXT = '{"stop":true}';
    /** A streamed reply carries PING on every this-many-th STREAM frame (pipes only). */
    public const PING_EVERY = 5;
    /** Seconds to wait for the PONG that answers a PING. */
    public const PONG_TIMEOUT = 60.0;

    private int $streamFrames = 0;
    private bool $streamStopped = false;
    private bool $stopRequested = false;

    public function __construct(
        private readonly Relay $relay,
        bool $interceptOutput = true,
    ) {
        if ($interceptOutput) {
            self::redirectOutputToStderr();
        }
    }

    /** A worker on the relay named by RR_RELAY ("pipes" when unset). */
    public static function create(?Environment $env = null, bool $interceptOutput = true): self
    {
        $env ??= Environment::fromGlobals();
        return new self(Relay::create($env->getRelayAddress()), $interceptOutput);
    }

    public function getRelay(): Relay
    {
        return $this->relay;
    }

    /**
     * Block until the next request. Answers pid requests (the handshake) and drops unexpected
     * PONG/STOP notices on the way. Returns null when the server asks the worker to stop, or has
     * closed the relay: the application loop must then end so the process exits.
     *
     * @throws WorkerException on a control message it does not understand or a malformed data frame
     * @throws RelayException when the relay breaks (server gone)
     */
    public function waitPayload(): ?Payload
    {
        while (!$this->stopRequested) {
            try {
                $frame = $this->relay->receive();
            } catch (RelayClosedException) {
                return null; // the server is gone: nobody is left to answer
            }
            if ($frame->hasFlag(Frame::CONTROL)) {
                if ($this->handleControl($frame)) {
                    return null;
                }
                continue;
            }
            if ($frame->hasStreamBit(Frame::STOP) || $frame->hasStreamBit(Frame::PONG)) {
                continue; // late notices of a stream that already ended
            }
            return self::payloadFromFrame($frame);
        }
        return null;
    }

    /**
     * Send a reply. $codec is OR-ed into the frame flags (0 for gRPC, Frame::CODEC_PROTO for HTTP
     * replies to protobuf requests). A payload with $eos = false is a streamed frame: more follow.
     */
    public function respond(Payload $payload, int $codec = 0): void
    {
        $byte10 = 0;
        $ping = false;
        if (!$payload->eos) {
            if ($this->streamFrames === 0) {
                $this->streamStopped = false;
            }
            $this->streamFrames++;
            $byte10 = Frame::STREAM;
            // The first frame of a response is never a PING (the server's exec path does not answer it).
            if ($this->relay->isPipe() && $this->streamFrames % self::PING_EVERY === 0) {
                $byte10 |= Frame::PING;
                $ping = true;
            }
        } else {
            $this->streamFrames = 0;
        }
        $this->relay->send(new Frame(
            $payload->header . $payload->body,
            $codec,
            [\strlen($payload->header)],
            $byte10,
        ));
        if ($ping) {
            $this->awaitPong();
        }
    }

    /** Fail the current request without losing the worker (an ERROR frame with the message). */
    public function error(string $message): void
    {
        $this->streamFrames = 0;
        $this->relay->send(new Frame($message, Frame::ERROR));
    }

    /**
     * Answer the current request with "please restart me": the server replaces this worker and
     * runs the same request on another one. Keep calling waitPayload(): the stop control the
     * server sends next makes it return null, which ends the loop.
     */
    public function stop(): void
    {
        $this->respond(new Payload('', self::STOP_CONTEXT));
    }

    /**
     * Has the server asked to stop the stream being produced? Looks at pending input without blocking.
     * When true, end the stream with endStream().
     */
    public function isStreamStopped(): bool
    {
        while (!$this->streamStopped && $this->relay->hasFrame()) {
            $this->takeNotice($this->relay->receive());
        }
        return $this->streamStopped;
    }

    /** Final, empty frame that ends a streamed reply (also the acknowledgement of a stream STOP). */
    public function endStream(int $codec = 0): void
    {
        $this->respond(new Payload('', ''), $codec);
    }

    /**
     * Send a whole streamed reply: every chunk but the last with the STREAM bit, the last one final.
     * Between chunks the STOP notice is checked; when the server stopped the stream, the rest is
     * skipped and an empty final frame acknowledges the stop.
     *
     * @param iterable<Payload> $chunks
     * @return bool true when all chunks were sent, false when the server stopped the stream
     */
    public function respondStream(iterable $chunks, int $codec = 0): bool
    {
        $pending = null;
        foreach ($chunks as $chunk) {
            if ($pending !== null) {
                $this->respond(new Payload($pending->body, $pending->header, false), $codec);
                if ($this->isStreamStopped()) {
                    $this->endStream($codec);
                    return false;
                }
            }
            $pending = $chunk;
        }
        $this->respond(new Payload($pending?->body ?? '', $pending?->header ?? '', true), $codec);
        return true;
    }

    /** @return bool true when the control frame asks the worker to stop */
    private function handleControl(Frame $frame): bool
    {
        $msg = \json_decode($frame->payload, true);
        if (!\is_array($msg)) {
            throw new WorkerException('control frame with a payload that is not a JSON object: ' . $frame->payload);
        }
        if (!empty($msg['stop'])) {
            $this->stopRequested = true;
            return true;
        }
        if (!empty($msg['pid'])) {
            $this->relay->send(new Frame(\json_encode(['pid' => \getmypid()], \JSON_THROW_ON_ERROR), Frame::CONTROL));
            return false;
        }
        throw new WorkerException('undefined control message: ' . $frame->payload);
    }

    private function awaitPong(): void
    {
        $deadline = \microtime(true) + self::PONG_TIMEOUT;
        while (true) {
            $left = $deadline - \microtime(true);
            if ($left <= 0 || !$this->relay->hasFrame($left)) {
                throw new RelayException(\sprintf('no PONG within %.0f s after a PING', self::PONG_TIMEOUT));
            }
            $frame = $this->relay->receive();
            if ($frame->hasStreamBit(Frame::PONG)) {
                return;
            }
            $this->takeNotice($frame);
            if ($this->streamStopped) {
                return; // the server is draining; it may not answer the PING any more
            }
        }
    }

    /** A frame that arrived while a stream is being produced: only STOP (and stray PONGs) are expected. */
    private function takeNotice(Frame $frame): void
    {
        if ($frame->hasStreamBit(Frame::STOP)) {
            $this->streamStopped = true;
            return;
        }
        if ($frame->hasStreamBit(Frame::PONG)) {
            return;
        }
        if ($frame->hasFlag(Frame::CONTROL)) {
            $msg = \json_decode($frame->payload, true);
            if (\is_array($msg) && !empty($msg['stop'])) {
                $this->streamStopped = true; // finish the stream; the next waitPayload() returns null
                $this->stopRequested = true;
                return;
            }
        }
        throw new WorkerException(\sprintf(
            'unexpected frame while streaming (flags 0x%02x, byte10 0x%02x)',
            $frame->flags,
            $frame->byte10,
        ));
    }

    private static function payloadFromFrame(Frame $frame): Payload
    {
        if (\count($frame->options) !== 1) {
            throw new WorkerException(\sprintf(
                'data frame must carry exactly 1 option (context length), got %d',
                \count($frame->options),
            ));
        }
        $ctxLen = $frame->options[0];
        if ($ctxLen > \strlen($frame->payload)) {
            throw new WorkerException(\sprintf(
                'context length %d exceeds the payload of %d bytes',
                $ctxLen,
                \strlen($frame->payload),
            ));
        }
        return new Payload(
            \substr($frame->payload, $ctxLen),
            \substr($frame->payload, 0, $ctxLen),
            true,
            $frame->flags,
        );
    }

    /**
     * `echo`/`print` output (and PHP's own error display) would corrupt the pipes relay: send it to
     * STDERR, unbuffered.
     */
    private static function redirectOutputToStderr(): void
    {
        static $installed = false;
        if ($installed) {
            return;
        }
        $installed = true;
        if (\filter_var(\ini_get('display_errors'), \FILTER_VALIDATE_BOOLEAN) || \ini_get('display_errors') === 'stdout') {
            \ini_set('display_errors', 'stderr');
        }
        \ob_start(static function (string $buffer): string {
            if ($buffer !== '') {
                \fwrite(\STDERR, $buffer);
            }
            return '';
        }, 1);
    }
}
