<?php

declare(strict_types=1);

// Test worker for the HTTP plugin (RRGrpc\Http\HttpWorker). Routes:
//   /            "hello"                     /echo      JSON description of the request
//   /status/N    status N                    /headers   multi-valued response headers
//   /stream      ?n=chunks&delay=ms, chunked; writes "stream stopped" to stderr on STOP
//   /error       worker error (ERROR frame)  /slow      ?ms=N, answers with its pid after N ms
//   /early       103 Early Hints, then 200   /big       ?kb=N of text (gzip tests)
//   /sendfile    ?path=P: X-Sendfile: P
//   anything else: 404

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Http\HttpWorker;
use RRGrpc\Http\StreamStoppedException;
use RRGrpc\Http\UploadedFile;

$http = HttpWorker::create();
$counter = 0;

function describe_uploads(array $tree): array
{
    $out = [];
    foreach ($tree as $key => $node) {
        if ($node instanceof UploadedFile) {
            $out[$key] = [
                'name' => $node->name, 'mime' => $node->mime, 'size' => $node->size, 'error' => $node->error,
                'content' => $node->isValid() ? $node->contents() : null, 'tmp_exists' => $node->tmpName !== '' && is_file($node->tmpName),
                'tmp_base' => basename($node->tmpName),
            ];
        } else {
            $out[$key] = describe_uploads($node);
        }
    }
    return $out;
}

while (($req = $http->waitRequest()) !== null) {
    $counter++;
    $path = $req->path();
    if ($path === '/') {
        $http->respond(200, 'hello', ['Content-Type' => 'text/plain']);
    } elseif ($path === '/echo') {
        $http->respond(200, json_encode([
            'method' => $req->method, 'uri' => $req->uri, 'path' => $path, 'protocol' => $req->protocol,
            'headers' => $req->headers, 'query' => $req->query, 'body' => $req->body, 'parsed' => $req->parsed,
            'input' => $req->input(), 'cookies' => $req->cookies, 'uploads' => describe_uploads($req->uploads),
            'attributes' => $req->attributes, 'remote_addr' => $req->remoteAddr, 'pid' => getmypid(),
            'counter' => $counter,
        ], JSON_THROW_ON_ERROR), ['Content-Type' => 'application/json']);
    } elseif (preg_match('#^/status/(\d+)$#', $path, $m)) {
        $http->respond((int) $m[1], "status {$m[1]}", ['Content-Type' => 'text/plain']);
    } elseif ($path === '/sendfile') {
        $http->respond(200, 'the worker body', ['X-Sendfile' => $req->query['path'] ?? '', 'X-Extra' => 'kept']);
    } elseif ($path === '/headers') {
        $http->respond(200, 'headers', ['Content-Type' => 'text/plain', 'X-Multi' => ['a', 'b'],
            'Set-Cookie' => ['c1=v1; Path=/', 'c2=v2; Path=/']]);
    } elseif ($path === '/stream') {
        $n = (int) ($req->query['n'] ?? 10);
        $delay = (int) ($req->query['delay'] ?? 0);
        $chunks = (static function () use ($n, $delay): Generator {
            try {
                for ($i = 1; $i <= $n; $i++) {
                    if ($i > 1 && $delay > 0) {
                        usleep(1000 * $delay);
                    }
                    yield "chunk $i\n";
                }
            } catch (StreamStoppedException) {
                fwrite(STDERR, "stream stopped\n");
            }
        })();
        $http->respond(200, $chunks, ['Content-Type' => 'text/plain']);
    } elseif ($path === '/error') {
        $http->error('boom: secret worker detail');
    } elseif ($path === '/slow') {
        usleep(1000 * (int) ($req->query['ms'] ?? 100));
        $http->respond(200, (string) getmypid(), ['Content-Type' => 'text/plain']);
    } elseif ($path === '/early') {
        $http->respondInformational(103, ['Link' => '</style.css>; rel=preload']);
        $http->respond(200, 'after hints', ['Content-Type' => 'text/plain']);
    } elseif ($path === '/big') {
        $http->respond(200, str_repeat("lorem ipsum dolor sit amet\n", 40 * (int) ($req->query['kb'] ?? 4)),
            ['Content-Type' => 'text/plain']);
    } else {
        $http->respond(404, 'not found', ['Content-Type' => 'text/plain']);
    }
}
