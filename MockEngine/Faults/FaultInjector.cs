using Microsoft.Extensions.Hosting;

namespace HybridServing.MockEngine.Faults;

/// <summary>What the fault injector decided for one inference request.</summary>
internal enum FaultDecision
{
    None,
    /// <summary>Answer 500 to this request only.</summary>
    Fail,
    /// <summary>The engine is dead: answer 500, /health answers 503.</summary>
    Dead,
}

/// <summary>
/// The <c>--mock-*</c> fault flags, for other components' tests: a seeded 5xx rate, seeded latency
/// spikes, and a crash after N inference requests (health turns 503 and the host stops, so the
/// port closes the way a dying vLLM's does).
/// </summary>
internal sealed class FaultInjector(MockEngineOptions options, IHostApplicationLifetime lifetime)
{
    private readonly object _gate = new();
    private readonly Random _random = new(options.Seed ^ 0x5EED);
    private long _requests;

    public bool IsDead { get; private set; }

    public FaultDecision OnRequest(out TimeSpan extraLatency)
    {
        extraLatency = TimeSpan.Zero;
        lock (_gate)
        {
            if (IsDead) return FaultDecision.Dead;
            _requests++;
            if (options.CrashAfterRequests is { } limit && _requests > limit)
            {
                IsDead = true;
                // Stop after this answer has had a moment to go out.
                _ = Task.Run(async () => { await Task.Delay(50).ConfigureAwait(false); lifetime.StopApplication(); });
                return FaultDecision.Dead;
            }
            if (options.SpikeRate > 0 && _random.NextDouble() < options.SpikeRate)
                extraLatency = TimeSpan.FromMilliseconds(options.SpikeMilliseconds);
            if (options.FailRate > 0 && _random.NextDouble() < options.FailRate) return FaultDecision.Fail;
            return FaultDecision.None;
        }
    }
}
