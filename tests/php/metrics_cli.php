<?php

/**
 * Metrics client from the command line (tests): `php metrics_cli.php <rpc address> <op> [args…]`.
 *   declare-add <value> <label>   the rpc_client.json exchange: declare conformance_requests_total, add
 *   call <op> <json args>         one raw metrics.<op> call with a JSON payload (error texts)
 * Prints {"ok":true,…} or {"ok":false,"error":…} on stdout.
 */

declare(strict_types=1);

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Metrics\Collector;
use RRGrpc\Metrics\Metrics;
use RRGrpc\Metrics\MetricsException;

[$_, $address, $op] = $argv;
$metrics = Metrics::create($address);
try {
    if ($op === 'declare-add') {
        $metrics->declare(
            'conformance_requests_total',
            Collector::counter()->withHelp('Conformance harness counter')->withLabels('kind'),
        );
        $metrics->add('conformance_requests_total', (float)$argv[3], [$argv[4]]);
        echo json_encode(['ok' => true]), "\n";
    } elseif ($op === 'call') {
        $args = json_decode($argv[4], true, 512, JSON_THROW_ON_ERROR);
        $result = match ($argv[3]) {
            'add' => $metrics->add($args['name'], $args['value'], $args['labels'] ?? []),
            'sub' => $metrics->sub($args['name'], $args['value'], $args['labels'] ?? []),
            'set' => $metrics->set($args['name'], $args['value'], $args['labels'] ?? []),
            'observe' => $metrics->observe($args['name'], $args['value'], $args['labels'] ?? []),
            'unregister' => $metrics->unregister($args['name']),
            'declare' => $metrics->declare($args['name'], match ($args['type']) {
                'counter' => Collector::counter(),
                'gauge' => Collector::gauge(),
                'histogram' => Collector::histogram(...($args['buckets'] ?? [])),
                'summary' => Collector::summary(),
            }),
        };
        echo json_encode(['ok' => true, 'result' => $result]), "\n";
    }
} catch (MetricsException $e) {
    echo json_encode(['ok' => false, 'error' => $e->getMessage()]), "\n";
}
