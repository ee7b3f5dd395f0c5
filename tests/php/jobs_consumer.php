<?php

declare(strict_types=1);

// Test consumer: what it does depends on the job name; every task it takes is logged as one JSON line
// (pid, id, job, pipeline, queue, driver, payload, headers, attempt) to $JOBS_LOG before it answers.
//   ok            complete()
//   fail_once     fail('first attempt fails', requeue) with header attempt=1, then complete()
//   fail          fail('always fails') without requeue
//   sleep         touch $JOBS_LOG.busy, sleep <payload> seconds, then complete()
//   hold          touch $JOBS_LOG.busy, wait while $JOBS_LOG.hold exists (at most 30 s), then complete()
//   nack          nack('no', redelivery: false)
//   requeue_once  withDelay(1)->withHeader('attempt','1')->requeue('again'), then ack()
//   worker_error  the worker's ERROR frame ("boom"), as a framework reporting an uncaught exception

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Jobs\Consumer;

$log = getenv('JOBS_LOG') ?: '/dev/null';
$consumer = new Consumer();
while ($task = $consumer->waitTask()) {
    $line = [
        'pid' => getmypid(), 'id' => $task->getId(), 'job' => $task->getName(),
        'pipeline' => $task->getPipeline(), 'queue' => $task->getQueue(), 'driver' => $task->getDriver(),
        'payload' => $task->getPayload(), 'headers' => $task->getHeaders(),
    ];
    file_put_contents($log, json_encode($line) . "\n", FILE_APPEND | LOCK_EX);
    $again = $task->hasHeader('attempt');
    switch ($task->getName()) {
        case 'fail_once':
            $again ? $task->complete() : $task->withHeader('attempt', '1')->fail('first attempt fails', true);
            break;
        case 'fail':
            $task->fail('always fails');
            break;
        case 'sleep':
            touch($log . '.busy');
            usleep((int)((float)$task->getPayload() * 1e6));
            $task->complete();
            break;
        case 'hold':
            touch($log . '.busy');
            for ($i = 0; $i < 3000 && file_exists($log . '.hold'); $i++) {
                usleep(10000);
            }
            $task->complete();
            break;
        case 'worker_error':
            $consumer->getWorker()->error('boom');
            break;
        case 'nack':
            $task->nack('no');
            break;
        case 'requeue_once':
            $again ? $task->ack() : $task->withDelay(1)->withHeader('attempt', '1')->requeue('again');
            break;
        default:
            $task->complete();
    }
}
