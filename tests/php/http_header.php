<?php

declare(strict_types=1);

// Test worker for the HTTP edge: answers 200 "ok" with the one response header the query asks for,
// name and value taken verbatim (?name=X:Y&value=v), so tests can send header names and values
// that must not reach the client. Without a query: 200 "hello".

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Http\HttpWorker;

$http = HttpWorker::create();

while (($req = $http->waitRequest()) !== null) {
    if (isset($req->query['name'])) {
        $http->respond(200, 'ok', [(string) $req->query['name'] => [(string) ($req->query['value'] ?? '')]]);
    } else {
        $http->respond(200, 'hello', ['Content-Type' => 'text/plain']);
    }
}
