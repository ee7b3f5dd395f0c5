<?php

/**
 * Owns the response-trailer collector of one call (sent as `trailers` in the reply context, §4.3).
 */

declare(strict_types=1);

namespace RRGrpc\GRPC;

final class ResponseTrailers extends ResponseHeaders
{
}
