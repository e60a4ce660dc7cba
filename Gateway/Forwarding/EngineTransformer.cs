using System.Net.Http.Headers;
using Yarp.ReverseProxy.Forwarder;

namespace HybridServing.Gateway.Forwarding;

/// <summary>
/// Per-request YARP transform: the client's gateway key never reaches the engine (the engine's own
/// key replaces it when configured), and the response names the engine that served.
/// </summary>
internal sealed class EngineTransformer(string engine, string? engineHeader, string? engineApiKey) : HttpTransformer
{
    /// <summary>The engine's status code, once its response headers arrived.</summary>
    public int? UpstreamStatus { get; private set; }

    /// <summary>The engine's Retry-After on 429/503, for passive health.</summary>
    public TimeSpan? UpstreamRetryAfter { get; private set; }

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        proxyRequest.Headers.Authorization = string.IsNullOrEmpty(engineApiKey) ? null : new AuthenticationHeaderValue("Bearer", engineApiKey);
    }

    public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
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
