using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace HybridServing.Gateway.Health;

/// <summary>
/// Engine health as the gateway sees it. Engines that refuse connections or break off a response
/// are ejected for <c>EjectionDuration</c>; a successful response or metrics scrape (the active
/// probe) brings them back early, so a restarted engine is used again within one scrape interval.
/// An engine answering 429/503 with Retry-After is left alone for that long, and a success does not
/// cut that short: the engine said how long it needs. The clock is injected (tests never sleep).
/// </summary>
internal sealed partial class PassiveHealth(IOptions<GatewayOptions> options, TimeProvider time, ILogger<PassiveHealth> logger)
{
    private sealed class State
    {
        public int ConsecutiveFailures;
        public long FailedUntilTicks;
        public long RetryAfterUntilTicks;
    }

    private readonly ConcurrentDictionary<string, State> _states = new(StringComparer.Ordinal);

    public bool IsEjected(string engine)
    {
        if (!_states.TryGetValue(engine, out var s)) return false;
        var now = time.GetUtcNow().UtcTicks;
        return Interlocked.Read(ref s.FailedUntilTicks) > now || Interlocked.Read(ref s.RetryAfterUntilTicks) > now;
    }

    /// <summary>The engine answered (a request or a probe): failures are forgiven.</summary>
    public void ReportSuccess(string engine)
    {
        if (!_states.TryGetValue(engine, out var s)) return;
        Interlocked.Exchange(ref s.ConsecutiveFailures, 0);
        if (Interlocked.Exchange(ref s.FailedUntilTicks, 0) > time.GetUtcNow().UtcTicks) LogRestored(engine);
    }

    public void ReportFailure(string engine)
    {
        var o = options.Value.PassiveHealth;
        var s = _states.GetOrAdd(engine, static _ => new State());
        if (Interlocked.Increment(ref s.ConsecutiveFailures) < o.FailureThreshold) return;
        if (Interlocked.Exchange(ref s.FailedUntilTicks, (time.GetUtcNow() + o.EjectionDuration).UtcTicks) <= time.GetUtcNow().UtcTicks)
            LogEjected(engine, o.EjectionDuration);
    }

    /// <summary>Honours an engine's Retry-After (capped), so the gateway stops adding to an overloaded engine.</summary>
    public void ReportRetryAfter(string engine, TimeSpan retryAfter)
    {
        var capped = retryAfter > options.Value.PassiveHealth.MaxRetryAfter ? options.Value.PassiveHealth.MaxRetryAfter : retryAfter;
        if (capped <= TimeSpan.Zero) return;
        var s = _states.GetOrAdd(engine, static _ => new State());
        var until = (time.GetUtcNow() + capped).UtcTicks;
        long seen;
        while ((seen = Interlocked.Read(ref s.RetryAfterUntilTicks)) < until && Interlocked.CompareExchange(ref s.RetryAfterUntilTicks, until, seen) != seen)
        {
        }
        LogEjected(engine, capped);
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "Engine {Engine} ejected from routing for {Duration}.")]
    private partial void LogEjected(string engine, TimeSpan duration);

    [LoggerMessage(EventId = 301, Level = LogLevel.Information, Message = "Engine {Engine} answers again; back in routing.")]
    private partial void LogRestored(string engine);
}
