<?php

/**
 * The example's HTTP application: a handful of routes on RRGrpc\Http\HttpWorker, booted once per
 * worker process and reused for every request (the point of an application server).
 */

declare(strict_types=1);

namespace App\Http;

use RRGrpc\Http\HttpWorker;
use RRGrpc\Http\Request;
use RRGrpc\Http\StreamStoppedException;
use RRGrpc\Http\UploadedFile;

final class Site
{
    private int $served = 0;

    public function serve(HttpWorker $http): void
    {
        while (($request = $http->waitRequest()) !== null) {
            $this->served++;
            try {
                $this->handle($http, $request);
            } catch (\Throwable $e) {
                $http->error((string) $e); // 500 for the client; the text is logged, shown only with pool.debug
            }
        }
    }

    private function handle(HttpWorker $http, Request $request): void
    {
        $json = ['Content-Type' => 'application/json'];
        match ([$request->method, $request->path()]) {
            ['GET', '/'] => $http->respond(200, $this->home(), ['Content-Type' => 'text/html; charset=utf-8']),
            ['GET', '/hello'] => $http->respond(200, \json_encode([
                'message' => 'Hello ' . ($request->query['name'] ?? 'World'),
                'pid' => \getmypid(),
                'served_by_this_worker' => $this->served,
            ], \JSON_THROW_ON_ERROR), $json),
            ['POST', '/upload'] => $http->respond(200, \json_encode([
                'fields' => $request->input(),
                'files' => self::describe($request->uploads),
            ], \JSON_THROW_ON_ERROR), $json),
            ['GET', '/events'] => $http->respond(200, self::ticks((int) ($request->query['n'] ?? 5)), [
                'Content-Type' => 'text/plain; charset=utf-8',
            ]),
            default => $http->respond(404, "no route for {$request->method} {$request->path()}\n", [
                'Content-Type' => 'text/plain; charset=utf-8',
            ]),
        };
    }

    private function home(): string
    {
        return <<<HTML
            <!doctype html>
            <html><head><title>rrgrpc example</title><link rel="stylesheet" href="/style.css"></head>
            <body><h1>rrgrpc: HTTP and gRPC from one process</h1>
            <ul><li><a href="/hello?name=Ada">/hello?name=Ada</a></li><li><a href="/events?n=5">/events</a> (streamed)</li></ul>
            <form method="post" action="/upload" enctype="multipart/form-data">
            <input name="title" value="my files"><input type="file" name="files[]" multiple><button>upload</button></form>
            </body></html>
            HTML;
    }

    /** One line every 200 ms, streamed as it is produced; stops early when the client goes away. */
    private static function ticks(int $n): \Generator
    {
        try {
            for ($i = 1; $i <= $n; $i++) {
                if ($i > 1) {
                    \usleep(200_000);
                }
                yield "tick $i of $n from pid " . \getmypid() . "\n";
            }
        } catch (StreamStoppedException) {
            \error_log('client went away; stream stopped');
        }
    }

    /** @return array<string, mixed> */
    private static function describe(array $tree): array
    {
        $out = [];
        foreach ($tree as $key => $node) {
            $out[$key] = $node instanceof UploadedFile
                ? ['name' => $node->name, 'size' => $node->size, 'error' => $node->error,
                   'sha1' => $node->isValid() ? \sha1($node->contents()) : null]
                : self::describe($node);
        }
        return $out;
    }
}
