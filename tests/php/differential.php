<?php

declare(strict_types=1);

// Test worker for the differential tests: the same script serves both pools under any `rr`
// (RoadRunner's or rrgrpc's), choosing by RR_MODE: grpc_echo.php for gRPC, http_echo.php for HTTP.

require __DIR__ . (getenv('RR_MODE') === 'grpc' ? '/grpc_echo.php' : '/http_echo.php');
