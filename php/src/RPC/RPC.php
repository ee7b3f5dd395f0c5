<?php

/**
 * Owns the Goridge RPC client of the PHP kit (PROTOCOL.md §6): JSON-codec calls (and raw-bytes and
 * protobuf calls) to the server's `rpc.listen` endpoint from workers and scripts, e.g. for metrics,
 * the informer or jobs.
 *
 *   $rpc = RPC::create(getenv('RR_RPC') ?: 'tcp://127.0.0.1:6001');
 *   $workers = $rpc->call('informer.Workers', 'grpc')['workers'];
 *   $metrics = $rpc->withServicePrefix('metrics');
 *   $metrics->call('add', ['name' => 'app_requests', 'value' => 1, 'labels' => ['GET']]);
 */

declare(strict_types=1);

namespace RRGrpc\RPC;

use RRGrpc\Goridge\Frame;
use RRGrpc\Goridge\Relay;
use RRGrpc\Goridge\RelayException;

final class RPC
{
    /** Sequence ids start at 1 and are shared by every client in the process, as in spiral/goridge. */
    private static int $seq = 1;

    public function __construct(
        private readonly Relay $relay,
        private readonly string $address,
        private readonly string $service = '',
    ) {
    }

    /**
     * A client for `tcp://host:port` or `unix://path` (what `rpc.listen` and RR_RPC hold). The
     * connection opens lazily on the first call.
     */
    public static function create(string $address): self
    {
        try {
            return new self(Relay::create($address), $address);
        } catch (RelayException $e) {
            throw new RPCException($e->getMessage(), 0, $e);
        }
    }

    /** A client whose call('name') goes to `<service>.Name`; same connection. */
    public function withServicePrefix(string $service): self
    {
        return new self($this->relay, $this->address, $service);
    }

    /**
     * Call a method with a JSON-encoded payload and return the decoded JSON result (arrays, not
     * objects).
     *
     * @throws ServiceException the server answered with an error
     * @throws RPCException     connection failure or an invalid reply frame
     */
    public function call(string $method, mixed $payload = null): mixed
    {
        try {
            $body = \json_encode($payload, \JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new RPCException("cannot encode the payload of $method as JSON: {$e->getMessage()}", 0, $e);
        }
        $reply = $this->exchange($method, Frame::CODEC_JSON, $body);
        try {
            return \json_decode($reply, true, 512, \JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new RPCException("invalid JSON in the reply to $method: {$e->getMessage()}", 0, $e);
        }
    }

    /**
     * Call a method with the RAW codec: the payload is sent as-is and the result returned as bytes
     * (e.g. `rpc.Config` returns the configuration as JSON text this way).
     *
     * @throws ServiceException|RPCException
     */
    public function callRaw(string $method, string $payload = ''): string
    {
        return $this->exchange($method, Frame::CODEC_RAW, $payload);
    }

    /**
     * Call a method with the protobuf codec (flag 0x80), as spiral/roadrunner-jobs does: the message is
     * serialized, the reply parsed into a new $resultClass (or returned as bytes without one).
     *
     * @template T of \Google\Protobuf\Internal\Message
     * @param class-string<T>|null $resultClass
     * @return ($resultClass is null ? string : T)
     * @throws ServiceException|RPCException
     */
    public function callProto(string $method, \Google\Protobuf\Internal\Message $message, ?string $resultClass = null): mixed
    {
        $reply = $this->exchange($method, Frame::CODEC_PROTO, $message->serializeToString());
        if ($resultClass === null) {
            return $reply;
        }
        $result = new $resultClass();
        try {
            $result->mergeFromString($reply);
        } catch (\Exception $e) {
            throw new RPCException("invalid protobuf in the reply to $method: {$e->getMessage()}", 0, $e);
        }
        return $result;
    }

    public function close(): void
    {
        $this->relay->close();
    }

    private function exchange(string $method, int $codec, string $body): string
    {
        $method = $this->service === '' ? $method : $this->service . '.' . \ucfirst($method);
        $seq = self::$seq;
        self::$seq = self::$seq >= 0xFFFFFFFF ? 1 : self::$seq + 1;
        try {
            $this->relay->send(new Frame($method . $body, $codec, [$seq, \strlen($method)]));
            $frame = $this->relay->receive();
        } catch (RelayException $e) {
            throw new RPCException("rpc $method on {$this->address}: {$e->getMessage()}", 0, $e);
        }
        if (\count($frame->options) !== 2) {
            throw new RPCException('Invalid RPC frame, options missing');
        }
        [$replySeq, $methodLength] = $frame->options;
        if ($replySeq !== $seq) {
            throw new RPCException("RPC sequence mismatch: sent $seq, got $replySeq");
        }
        $result = (string)\substr($frame->payload, $methodLength);
        if ($frame->hasFlag(Frame::ERROR)) {
            throw new ServiceException($method, $result, $this->address);
        }
        return $result;
    }
}
