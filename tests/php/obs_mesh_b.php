<?php

/**
 * Test worker for the two-hop trace (host B, HTTP): answers "b:<msg>:<traceparent it received>".
 */

declare(strict_types=1);

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Http\HttpWorker;

$http = HttpWorker::create();
while (($req = $http->waitRequest()) !== null) {
    $traceparent = $req->header('Traceparent') ?? '-';
    $http->respond(200, 'b:' . ($req->query['msg'] ?? '') . ':' . $traceparent, ['Content-Type' => 'text/plain']);
}
