using System.Net.Http.Headers;
using Yarp.ReverseProxy.Forwarder;

namespace HybridServing.Gateway.Forwarding;

/// <summary>
/// Per-request YARP transform: the client's gateway key never reaches the engine (the engine's own
/// key replaces it when configured), and the response names the engine that served.
/// </summary>
/// <param name="holdBackNotFound">
/// A 404 is not passed to the client but reported as <see cref="ModelNotFound"/>: the request was for an
/// adapter the routing table shows on another engine too, and this one no longer has it (placement moved it).
/// </param>
/// <param name="holdBackUnavailable">
/// A 503 without Retry-After is not passed on but reported as <see cref="Unavailable"/>: another engine may
/// serve, and this one did no work (e.g. vLLM in sleep mode before the gateway's next scrape sees it).
/// </param>
internal sealed class EngineTransformer(string engine, string? engineHeader, string? engineApiKey, bool holdBackNotFound, bool holdBackUnavailable = false) : HttpTransformer
{
    /// <summary>The engine's status code, once its response headers arrived.</summary>
    public int? UpstreamStatus { get; private set; }

    /// <summary>The engine's Retry-After on 429/503, for passive health.</summary>
    public TimeSpan? UpstreamRetryAfter { get; private set; }

    /// <summary>The engine answered 404 and it was held back (nothing of it reached the client).</summary>
    public bool ModelNotFound { get; private set; }

    /// <summary>The engine answered 503 and it was held back (nothing of it reached the client).</summary>
    public bool Unavailable { get; private set; }

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        proxyRequest.Headers.Authorization = string.IsNullOrEmpty(engineApiKey) ? null : new AuthenticationHeaderValue("Bearer", engineApiKey);
    }

    public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        if (holdBackNotFound && proxyResponse?.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            // Headers not copied, body skipped: the caller resets the status and tries a holder that has it.
            UpstreamStatus = 404;
            ModelNotFound = true;
            return false;
        }
        // A 503 with Retry-After is the engine pacing its clients: passed on (and honoured by passive health).
        if (holdBackUnavailable && proxyResponse?.StatusCode == System.Net.HttpStatusCode.ServiceUnavailable && proxyResponse.Headers.RetryAfter is null)
        {
            UpstreamStatus = 503;
            Unavailable = true;
            return false;
        }
        var proceed = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
        if (proxyResponse is not null)
        {
            UpstreamStatus = (int)proxyResponse.StatusCode;
            if (proxyResponse.StatusCode is System.Net.HttpStatusCode.TooManyRequests or System.Net.HttpStatusCode.ServiceUnavailable)
            {
                var ra = proxyResponse.Headers.RetryAfter;
                UpstreamRetryAfter = ra?.Delta ?? (ra?.Date is { } date ? date - DateTimeOffset.UtcNow : null);
            }
            if (!string.IsNullOrEmpty(engineHeader)) httpContext.Response.Headers[engineHeader] = engine;
        }
        return proceed;
    }
}
