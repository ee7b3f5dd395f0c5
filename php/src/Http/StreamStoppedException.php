<?php

/**
 * Owns the signal thrown into a response generator when the server stopped the stream (the client
 * went away); the generator may catch it to clean up, and whatever it yields afterwards is dropped.
 */

declare(strict_types=1);

namespace RRGrpc\Http;

final class StreamStoppedException extends \RuntimeException
{
}
