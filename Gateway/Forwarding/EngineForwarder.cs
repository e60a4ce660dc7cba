using System.Diagnostics;
using System.Net;
using HybridServing.Gateway.Routing;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Forwarder;

namespace HybridServing.Gateway.Forwarding;

/// <summary>How one forwarding attempt ended.</summary>
/// <param name="CanRetry">Nothing reached the client and the engine was never reached: another engine may try.</param>
internal sealed record ForwardAttempt(ForwarderError Error, bool CanRetry, int? UpstreamStatus, TimeSpan? UpstreamRetryAfter, Exception? Exception)
{
    /// <summary>The engine broke off its response (it crashed or was killed mid-stream).</summary>
    public bool EngineFailed { get; init; }

    /// <summary>The engine does not have the adapter (404, held back): nothing reached the client, another holder may serve.</summary>
    public bool ModelNotFound { get; init; }

    /// <summary>The engine answered 503 (held back): nothing reached the client, another engine may serve.</summary>
    public bool EngineUnavailable { get; init; }

    /// <summary>
    /// The engine took the request, then its connection closed or was reset before any response header
    /// (the process died): nothing reached the client and nothing was answered, so another holder may
    /// serve it. The response is reset for that; the caller writes the 502 when no other holder is left.
    /// </summary>
    public bool EngineDropped { get; init; }
}

/// <summary>Sends a buffered request to one engine with YARP's <see cref="IHttpForwarder"/>.</summary>
internal sealed class EngineForwarder : IDisposable
{
    private readonly IHttpForwarder _forwarder;
    private readonly GatewayOptions _options;
    private readonly HttpMessageInvoker _client;
    private readonly ForwarderRequestConfig _config;

    public EngineForwarder(IHttpForwarder forwarder, IOptions<GatewayOptions> options)
    {
        _forwarder = forwarder;
        _options = options.Value;
        // YARP's recommended client: no proxy, no redirects, no decompression (bytes pass through as sent), no cookies.
        _client = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            EnableMultipleHttp2Connections = true,
            ConnectTimeout = _options.ConnectTimeout,
            ActivityHeadersPropagator = new ReverseProxyPropagator(DistributedContextPropagator.Current),
        });
        _config = new ForwarderRequestConfig { ActivityTimeout = _options.ActivityTimeout };
    }

    /// <param name="holdBackNotFound">Another engine holds the adapter: an answer of 404 from this one is not passed on (see <see cref="ForwardAttempt.ModelNotFound"/>).</param>
    /// <param name="holdBackUnavailable">Another engine may serve: a 503 from this one is not passed on (see <see cref="ForwardAttempt.EngineUnavailable"/>).</param>
    public async Task<ForwardAttempt> ForwardAsync(HttpContext context, EngineRoute engine, RequestBody body, bool holdBackNotFound, bool holdBackUnavailable = false)
    {
        // Each attempt reads the buffered bytes from the start; the client's body was consumed once.
        context.Request.Body = body.OpenRead();
        context.Request.ContentLength = body.Length;
        context.Request.Headers.TransferEncoding = default;
        var transformer = new EngineTransformer(engine.Name, _options.EngineHeader, _options.EngineApiKey, holdBackNotFound, holdBackUnavailable);
        var deferred = DeferredAbort.Install(context);
        ForwarderError error;
        try
        {
            error = await _forwarder.SendAsync(context, engine.DestinationPrefix, _client, _config, transformer);
        }
        finally
        {
            deferred.Uninstall();
        }
        if (error == ForwarderError.None && (transformer.ModelNotFound || transformer.Unavailable) && !context.Response.HasStarted)
        {
            // YARP copied the status before asking the transformer: start clean for the next engine.
            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Response.Headers.Clear();
            return new ForwardAttempt(error, false, transformer.UpstreamStatus, null, null)
            {
                ModelNotFound = transformer.ModelNotFound, EngineUnavailable = transformer.Unavailable,
            };
        }
        if (error == ForwarderError.None)
            return new ForwardAttempt(error, false, transformer.UpstreamStatus, transformer.UpstreamRetryAfter, null);
        if (deferred.Requested)
        {
            var brokenStream = error == ForwarderError.ResponseBodyDestination && IsEventStream(context.Response.ContentType)
                && !context.RequestAborted.IsCancellationRequested;
            if (brokenStream) await WriteStreamErrorAsync(context, engine.Name);
            else deferred.Apply();
            return new ForwardAttempt(error, false, transformer.UpstreamStatus, transformer.UpstreamRetryAfter, context.GetForwarderErrorFeature()?.Exception)
            {
                EngineFailed = error == ForwarderError.ResponseBodyDestination,
            };
        }

        var exception = context.GetForwarderErrorFeature()?.Exception;
        var connectFailed = error == ForwarderError.Request
            && !context.Response.HasStarted
            && !context.RequestAborted.IsCancellationRequested
            && exception is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError };
        // The engine died with the request (SIGKILL, crash): its connection ended or was reset before a header.
        // Inference has no side effect but its cost, so answering it elsewhere is safe; a timeout is not this.
        var dropped = !connectFailed && error == ForwarderError.Request
            && !context.Response.HasStarted
            && !context.RequestAborted.IsCancellationRequested
            && IsConnectionBroken(exception);
        if (connectFailed || dropped)
        {
            // Undo what YARP set for its 502 so a retry (or our own error body) starts clean.
            context.Features.Set<IForwarderErrorFeature>(null);
            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Response.Headers.Clear();
        }
        // The engine took the request and then failed (closed, reset, broke off its body) before the
        // client saw a byte: not retried (it may have done the work), but it counts against its health.
        var engineFailed = !connectFailed && !context.RequestAborted.IsCancellationRequested
            && error is ForwarderError.Request or ForwarderError.ResponseBodyDestination or ForwarderError.ResponseHeaders;
        return new ForwardAttempt(error, connectFailed, transformer.UpstreamStatus, transformer.UpstreamRetryAfter, exception)
        {
            EngineFailed = engineFailed, EngineDropped = dropped,
        };
    }

    /// <summary>The connection ended (EOF) or was reset while the response was awaited: not a timeout, not a protocol error.</summary>
    private static bool IsConnectionBroken(Exception? exception)
    {
        if (exception is HttpRequestException { HttpRequestError: HttpRequestError.ResponseEnded }) return true;
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is HttpIOException { HttpRequestError: HttpRequestError.ResponseEnded }) return true;
            if (e is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.ConnectionReset or System.Net.Sockets.SocketError.ConnectionAborted })
                return true;
        }
        return false;
    }

    private static bool IsEventStream(string? contentType) =>
        contentType is not null && contentType.StartsWith("text/event-stream", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// An OpenAI-style error event, then the normal end of the stream, so SDKs report an error
    /// instead of silently returning a truncated answer.
    /// </summary>
    private static async Task WriteStreamErrorAsync(HttpContext context, string engine)
    {
        var error = OpenAi.OpenAiErrors.Serialize(StatusCodes.Status502BadGateway, OpenAi.OpenAiErrors.BadGateway,
            $"The engine '{engine}' stopped in the middle of the response; retry the request.");
        try
        {
            await context.Response.Body.WriteAsync("data: "u8.ToArray());
            await context.Response.Body.WriteAsync(error);
            await context.Response.Body.WriteAsync("\n\ndata: [DONE]\n\n"u8.ToArray());
            await context.Response.Body.FlushAsync();
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
        {
            context.Abort();
        }
    }

    public void Dispose() => _client.Dispose();
}
