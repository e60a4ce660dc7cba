namespace HybridServing.ControlPlane.Kubernetes;

/// <summary>
/// A token bucket for mutating API calls (status writes, finalizer patches, events): on average
/// <c>rate</c> per second, bursts up to <c>burst</c>. It keeps the control plane a polite API client
/// however busy placement is (docs/benchmarks.md §3: at most 20 mutating calls per second on average).
/// </summary>
internal sealed class MutationBudget
{
    private readonly double _rate;
    private readonly double _burst;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private double _tokens;
    private long _last;
    private long _spent;

    public MutationBudget(double rate, int burst, TimeProvider time)
    {
        if (!(rate > 0)) throw new ArgumentOutOfRangeException(nameof(rate), rate, "the mutation rate must be positive.");
        if (burst < 1) throw new ArgumentOutOfRangeException(nameof(burst), burst, "the burst must be at least 1.");
        _rate = rate;
        _burst = burst;
        _time = time;
        _tokens = burst;
        _last = time.GetTimestamp();
    }

    /// <summary>Mutating calls made so far.</summary>
    public long Spent => Interlocked.Read(ref _spent);

    /// <summary>Takes a token if one is available now.</summary>
    public bool TryTake()
    {
        lock (_gate)
        {
            Refill();
            if (_tokens < 1) return false;
            _tokens -= 1;
            _spent++;
            return true;
        }
    }

    /// <summary>Waits for a token.</summary>
    public async ValueTask TakeAsync(CancellationToken ct)
    {
        while (true)
        {
            TimeSpan wait;
            lock (_gate)
            {
                Refill();
                if (_tokens >= 1)
                {
                    _tokens -= 1;
                    _spent++;
                    return;
                }
                wait = TimeSpan.FromSeconds((1 - _tokens) / _rate);
            }
            await Task.Delay(wait < TimeSpan.FromMilliseconds(1) ? TimeSpan.FromMilliseconds(1) : wait, _time, ct);
        }
    }

    private void Refill()
    {
        var now = _time.GetTimestamp();
        var elapsed = _time.GetElapsedTime(_last, now);
        _last = now;
        _tokens = Math.Min(_burst, _tokens + elapsed.TotalSeconds * _rate);
    }
}
