<?php

declare(strict_types=1);

// Test worker: replies with "<pid>:<n>", n counting the requests this process has served (from 1).

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Worker\Payload;
use RRGrpc\Worker\Worker;

$count = 0;
$worker = Worker::create();
while (($request = $worker->waitPayload()) !== null) {
    $worker->respond(new Payload(getmypid() . ':' . ++$count));
}
