<?php

/**
 * The example's single PHP entry point, started by `rr serve`:
 *  - RR_MODE=http: POST /mail?to=...&subject=... pushes an App\Jobs\SendMail job to the "emails"
 *    pipeline (with the request's trace context in its headers) and answers 202 with the job id;
 *    GET /stats answers the pipeline's state.
 *  - RR_MODE=jobs: a consumer that "sends" each mail: one JSON line appended to $MAIL_LOG
 *    (default var/sent.log), then complete(); a subject "fail once" is failed and requeued first.
 */

declare(strict_types=1);

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Http\HttpWorker;
use RRGrpc\Jobs\Consumer;
use RRGrpc\Jobs\Jobs;

if (getenv('RR_MODE') === 'jobs') {
    $log = getenv('MAIL_LOG') ?: __DIR__ . '/var/sent.log';
    @mkdir(dirname($log), 0777, true);
    $consumer = new Consumer();
    while ($task = $consumer->waitTask()) {
        $mail = json_decode($task->getPayload(), true);
        if (($mail['subject'] ?? '') === 'fail once' && !$task->hasHeader('attempt')) {
            $task->withHeader('attempt', '2')->fail('smtp said try later', requeue: true);
            continue;
        }
        file_put_contents($log, json_encode([
            'id' => $task->getId(), 'to' => $mail['to'] ?? '', 'subject' => $mail['subject'] ?? '',
            'pipeline' => $task->getPipeline(), 'driver' => $task->getDriver(), 'pid' => getmypid(),
            'traceparent' => $task->getHeaderLine('traceparent'),
        ]) . "\n", FILE_APPEND | LOCK_EX);
        $task->complete();
    }
    return;
}

$http = HttpWorker::create();
$emails = (new Jobs())->connect('emails');
$json = ['Content-Type' => 'application/json'];
while (($request = $http->waitRequest()) !== null) {
    try {
        if ($request->method === 'POST' && $request->path() === '/mail') {
            $task = $emails->create('App\\Jobs\\SendMail', json_encode([
                'to' => $request->query['to'] ?? 'nobody@example.com',
                'subject' => $request->query['subject'] ?? 'hello',
            ]));
            $traceparent = $request->header('Traceparent');
            if ($traceparent !== null) {
                $task = $task->withHeader('traceparent', $traceparent); // one trace: request -> push -> consume
            }
            $queued = $emails->dispatch($task);
            $http->respond(202, json_encode(['id' => $queued->getId()]), $json);
        } elseif ($request->path() === '/stats') {
            $stat = $emails->getPipelineStat();
            $http->respond(200, json_encode([
                'pipeline' => $stat?->getPipeline(), 'driver' => $stat?->getDriver(), 'ready' => $stat?->getReady(),
                'active' => $stat?->getActive(), 'delayed' => $stat?->getDelayed(), 'reserved' => $stat?->getReserved(),
            ]), $json);
        } else {
            $http->respond(404, "try POST /mail?to=ada@example.com or GET /stats\n");
        }
    } catch (\Throwable $e) {
        $http->error((string)$e);
    }
}
