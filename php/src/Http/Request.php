<?php

/**
 * Owns the application's view of one HTTP request as the server describes it (PROTOCOL.md §5.2):
 * method, URI, headers, query, raw or parsed body, uploads, cookies, attributes and client address.
 */

declare(strict_types=1);

namespace RRGrpc\Http;

final class Request
{
    /**
     * @param array<string, list<string>>  $headers    canonical names ("Content-Type"), Host added back from the URI
     * @param array<string, string>        $cookies
     * @param array<string, mixed>         $query      parsed with PHP's parse_str (bracket notation)
     * @param array<string, mixed>|null    $parsed     the form tree when the server parsed the body
     * @param array<string, mixed>         $uploads    tree of UploadedFile (lists for name[] fields)
     * @param array<string, mixed>         $attributes server-side attributes (+ rr_parsed_body)
     */
    public function __construct(
        public readonly string $method,
        public readonly string $uri,
        public readonly string $protocol,
        public readonly string $remoteAddr,
        public readonly array $headers,
        public readonly array $cookies,
        public readonly string $rawQuery,
        public readonly array $query,
        public readonly string $body,
        public readonly ?array $parsed,
        public readonly array $uploads,
        public readonly array $attributes,
    ) {
    }

    /** The path of the URI ("/" when empty). */
    public function path(): string
    {
        $path = \parse_url($this->uri, \PHP_URL_PATH);
        return \is_string($path) && $path !== '' ? $path : '/';
    }

    /** First value of a header (case-insensitive name), or $default. */
    public function header(string $name, ?string $default = null): ?string
    {
        foreach ($this->headers as $key => $values) {
            if (\strcasecmp($key, $name) === 0) {
                return $values[0] ?? $default;
            }
        }
        return $default;
    }

    /** The body as an array: the parsed form, or JSON decoded when the client sent JSON. */
    public function input(): array
    {
        if ($this->parsed !== null) {
            return $this->parsed;
        }
        if (\str_contains((string) $this->header('Content-Type'), 'json') && $this->body !== '') {
            $data = \json_decode($this->body, true);
            return \is_array($data) ? $data : [];
        }
        return [];
    }
}
