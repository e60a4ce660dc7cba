using Microsoft.AspNetCore.Http.Features;

namespace HybridServing.Gateway.Forwarding;

/// <summary>
/// While YARP forwards, holds back its reset/abort of a started response so that, when the engine
/// dies in the middle of an SSE stream, the client can still get an error event and a clean end
/// instead of a torn connection. Any other failure is aborted exactly as YARP asked, right after.
/// </summary>
internal sealed class DeferredAbort : IHttpRequestLifetimeFeature, IHttpResetFeature
{
    private readonly HttpContext _context;
    private readonly IHttpRequestLifetimeFeature _lifetime;
    private readonly IHttpResetFeature? _reset;
    private int? _resetCode;

    private DeferredAbort(HttpContext context, IHttpRequestLifetimeFeature lifetime, IHttpResetFeature? reset)
    {
        _context = context;
        _lifetime = lifetime;
        _reset = reset;
    }

    public bool Requested { get; private set; }

    public static DeferredAbort Install(HttpContext context)
    {
        var lifetime = context.Features.GetRequiredFeature<IHttpRequestLifetimeFeature>();
        var reset = context.Features.Get<IHttpResetFeature>();
        var deferred = new DeferredAbort(context, lifetime, reset);
        context.Features.Set<IHttpRequestLifetimeFeature>(deferred);
        // Only stand in for reset where the server offers it (HTTP/2); YARP falls back to Abort otherwise.
        if (reset is not null) context.Features.Set<IHttpResetFeature>(deferred);
        return deferred;
    }

    /// <summary>Puts the server's own features back; call before writing anything else.</summary>
    public void Uninstall()
    {
        _context.Features.Set(_lifetime);
        if (_reset is not null) _context.Features.Set(_reset);
    }

    /// <summary>Does what YARP asked for, now.</summary>
    public void Apply()
    {
        if (!Requested) return;
        if (_resetCode is { } code && _reset is not null) _reset.Reset(code);
        else _lifetime.Abort();
    }

    public CancellationToken RequestAborted
    {
        get => _lifetime.RequestAborted;
        set => _lifetime.RequestAborted = value;
    }

    public void Abort() => Requested = true;

    public void Reset(int errorCode)
    {
        Requested = true;
        _resetCode = errorCode;
    }
}
