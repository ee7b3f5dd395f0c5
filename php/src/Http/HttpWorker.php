<?php

/**
 * Owns the HTTP worker protocol on the PHP side (PROTOCOL.md §5): decodes the request context in
 * either encoding (protobuf http.v1.Request with frame flags 0x80, via ProtoCodec, or the legacy JSON context),
 * builds a Request, and encodes replies in the codec of the request: a plain response, a streamed
 * one from any iterable (each chunk one STREAM frame, stopped early when the server says STOP),
 * informational 1xx heads, errors and restart requests. Built on RRGrpc\Worker\Worker.
 */

declare(strict_types=1);

namespace RRGrpc\Http;

use RRGrpc\Goridge\Frame;
use RRGrpc\Worker\Payload;
use RRGrpc\Worker\Worker;

final class HttpWorker
{
    /** Reply codec of the request being answered: Frame::CODEC_PROTO or 0 (legacy JSON). */
    private int $codec = Frame::CODEC_PROTO;

    public function __construct(private readonly Worker $worker)
    {
    }

    public static function create(): self
    {
        return new self(Worker::create());
    }

    public function getWorker(): Worker
    {
        return $this->worker;
    }

    /** Block until the next request; null when the server asks the worker to stop. */
    public function waitRequest(): ?Request
    {
        $payload = $this->worker->waitPayload();
        if ($payload === null) {
            return null;
        }
        $json = ($payload->flags & Frame::CODEC_PROTO) === 0
            && ($payload->flags & Frame::CODEC_JSON) !== 0 || \str_starts_with($payload->header, '{');
        $this->codec = $json ? 0 : Frame::CODEC_PROTO;
        return $json ? self::fromJson($payload) : self::fromProto($payload);
    }

    /**
     * Answer the current request. A string body is one frame; any other iterable is streamed, one
     * frame per chunk. When the server stops the stream (client gone), a StreamStoppedException is
     * thrown into a generator body and the rest is dropped.
     *
     * @param array<string, string|list<string>> $headers
     * @param string|iterable<string>            $body
     * @return bool false when the stream was stopped by the server
     */
    public function respond(int $status, string|iterable $body = '', array $headers = []): bool
    {
        $head = $this->head($status, $headers);
        if (\is_string($body)) {
            $this->worker->respond(new Payload($body, $head), $this->codec);
            return true;
        }
        $first = true;
        $stopped = false;
        foreach ($body as $chunk) {
            $this->worker->respond(new Payload((string) $chunk, $first ? $head : '', false), $this->codec);
            $first = false;
            if ($this->worker->isStreamStopped()) {
                $stopped = true;
                if ($body instanceof \Generator) {
                    try {
                        $body->throw(new StreamStoppedException('stream stopped by the server'));
                    } catch (StreamStoppedException) {
                        // the generator did not handle it: nothing more to produce
                    }
                }
                break;
            }
        }
        $this->worker->respond(new Payload('', $first ? $head : '', true), $this->codec);
        return !$stopped;
    }

    /**
     * Send an informational head (e.g. 103 Early Hints) ahead of the real response.
     *
     * @param array<string, string|list<string>> $headers
     */
    public function respondInformational(int $status, array $headers = []): void
    {
        $this->worker->respond(new Payload('', $this->head($status, $headers), false), $this->codec);
    }

    /** Fail the request (the client gets http.internal_error_code); the worker stays. */
    public function error(string $message): void
    {
        $this->worker->error($message);
    }

    /** Ask to be replaced; the server re-runs this request on another worker. */
    public function stop(): void
    {
        $this->worker->stop();
    }

    /** @param array<string, string|list<string>> $headers */
    private function head(int $status, array $headers): string
    {
        if ($this->codec === 0) {
            $list = [];
            foreach ($headers as $name => $values) {
                $list[(string) $name] = \array_values(\array_map('strval', (array) $values));
            }
            return \json_encode(['status' => $status, 'headers' => $list ?: new \stdClass()], \JSON_THROW_ON_ERROR);
        }
        return ProtoCodec::encodeResponse($status, $headers);
    }

    private static function fromProto(Payload $payload): Request
    {
        $msg = ProtoCodec::decodeRequest($payload->header);
        $headers = self::withHost($msg['uri'], $msg['header']);
        $cookies = [];
        foreach ($msg['cookies'] as $name => $values) {
            $cookies[$name] = \implode(',', $values);
        }
        $attributes = [];
        foreach ($msg['attributes'] as $name => $values) {
            $attributes[$name] = $values[0] ?? '';
        }
        $uploads = $msg['uploads'] !== '' ? \json_decode($msg['uploads'], true) : [];
        return self::build(
            $msg['method'], $msg['uri'], $msg['protocol'], $msg['remote_addr'], $headers, $cookies,
            $msg['raw_query'], $payload->body, $msg['parsed'], \is_array($uploads) ? $uploads : [], $attributes,
        );
    }

    private static function fromJson(Payload $payload): Request
    {
        $ctx = \json_decode($payload->header, true, 512, \JSON_THROW_ON_ERROR);
        $headers = [];
        foreach ((array) ($ctx['headers'] ?? []) as $name => $values) {
            $headers[(string) $name] = \array_values(\array_map('strval', (array) $values));
        }
        return self::build(
            (string) ($ctx['method'] ?? 'GET'), (string) ($ctx['uri'] ?? ''), (string) ($ctx['protocol'] ?? ''),
            (string) ($ctx['remoteAddr'] ?? ''), self::withHost((string) ($ctx['uri'] ?? ''), $headers),
            \array_map('strval', (array) ($ctx['cookies'] ?? [])), (string) ($ctx['rawQuery'] ?? ''),
            $payload->body, (bool) ($ctx['parsed'] ?? false), (array) ($ctx['uploads'] ?? []),
            (array) ($ctx['attributes'] ?? []),
        );
    }

    /**
     * @param array<string, list<string>> $headers
     * @param array<string, string>       $cookies
     * @param array<string, mixed>        $uploads
     * @param array<string, mixed>        $attributes
     */
    private static function build(
        string $method, string $uri, string $protocol, string $remote, array $headers, array $cookies,
        string $rawQuery, string $body, bool $parsed, array $uploads, array $attributes,
    ): Request {
        $query = [];
        if ($rawQuery !== '') {
            \parse_str($rawQuery, $query);
        }
        $tree = null;
        if ($parsed) {
            $decoded = \json_decode($body === '' ? '{}' : $body, true);
            $tree = \is_array($decoded) ? $decoded : [];
        }
        $attributes['rr_parsed_body'] = $parsed;
        return new Request(
            $method, $uri, $protocol, $remote, $headers, $cookies, $rawQuery, $query, $body, $tree,
            self::files($uploads), $attributes,
        );
    }

    /**
     * @param array<string, mixed> $tree
     * @return array<string, mixed>
     */
    private static function files(array $tree): array
    {
        $out = [];
        foreach ($tree as $key => $node) {
            if (\is_array($node) && \array_key_exists('tmpName', $node) && \array_key_exists('error', $node)) {
                $out[$key] = new UploadedFile(
                    (string) $node['name'], (string) $node['mime'], (int) $node['size'], (int) $node['error'],
                    (string) $node['tmpName'],
                );
            } elseif (\is_array($node)) {
                $out[$key] = self::files($node);
            }
        }
        return $out;
    }

    /**
     * The server sends Host only inside the URI; put it back first, as PSR-7 does.
     *
     * @param array<string, list<string>> $headers
     * @return array<string, list<string>>
     */
    private static function withHost(string $uri, array $headers): array
    {
        $host = \parse_url($uri, \PHP_URL_HOST);
        if (!\is_string($host) || $host === '') {
            return $headers;
        }
        $port = \parse_url($uri, \PHP_URL_PORT);
        return ['Host' => [$port ? "$host:$port" : $host]] + $headers;
    }
}
