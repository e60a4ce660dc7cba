using System.Globalization;

namespace HybridServing.Autoscaler.Decisions;

/// <summary>
/// The decision core for one pool: KPA's stable and panic windows over the pool's concurrency, HPA's
/// scale-down stabilization, rate limits, min/max, scale to and from zero, and the LoRA rule. Pure:
/// no I/O and no clock; the caller passes each observation and the time. It keeps only the windows'
/// history between calls, so the same code runs live and in the simulator's virtual time.
/// </summary>
public sealed class PoolScaler(PoolPolicy policy)
{
    private readonly Queue<(DateTimeOffset At, double Concurrency)> _samples = new();
    private readonly Queue<(DateTimeOffset At, int Count)> _recommendations = new();
    private DateTimeOffset? _panicUntil;
    private DateTimeOffset? _lastScaleUp;
    private DateTimeOffset? _idleSince;
    private int? _lastDesired;

    public PoolPolicy Policy => policy;

    /// <summary>Decides the desired engine count from <paramref name="signals"/> (null: no observation) at <paramref name="now"/>.</summary>
    public ScaleDecision Decide(PoolSignals? signals, DateTimeOffset now)
    {
        if (Frozen(signals, now) is { } why)
        {
            // Keep what is running (or what was last decided): missing data never scales anything down.
            var current = signals?.CurrentEngines ?? _lastDesired ?? policy.MinEngines;
            var held = Math.Clamp(_lastDesired ?? current, policy.MinEngines, policy.MaxEngines);
            return Record(new ScaleDecision(policy.Pool, now, current, held, ScaleMode.Frozen, ScaleReasons.SignalsMissing, why,
                StableAverage(now), PanicAverage(now), signals));
        }
        var s = signals!;
        var engines = s.CurrentEngines;
        _samples.Enqueue((now, s.Concurrency));
        while (_samples.Peek().At <= now - policy.StableWindow) _samples.Dequeue();
        _idleSince = s.Concurrency > 0 ? null : _idleSince ?? now;

        var stable = StableAverage(now);
        var panic = PanicAverage(now);
        var wantStable = EnginesFor(stable);
        var wantPanic = EnginesFor(panic);

        // KPA: panic when the short window asks for PanicThreshold × what runs; it lasts a stable window.
        if (engines > 0 && wantPanic >= policy.PanicThreshold * engines) _panicUntil = now + policy.StableWindow;
        var panicking = _panicUntil is { } until && now < until;
        if (!panicking) _panicUntil = null;

        int want;
        string reason;
        if (panicking)
        {
            // In panic the count never goes down.
            want = Math.Max(wantPanic, Math.Max(engines, _lastDesired ?? 0));
            reason = ScaleReasons.PanicLoad;
        }
        else
        {
            want = wantStable;
            reason = ScaleReasons.StableLoad;
        }
        if (engines == 0 && s.Concurrency > 0)
        {
            want = Math.Max(want, 1);
            reason = ScaleReasons.ScaleFromZero;
        }
        else if (s.HeldRequests > 0 && want <= engines)
        {
            // The gateway holds a request only when every engine that could serve it sleeps: however idle
            // the awake engines are, they cannot take it (activator).
            want = engines + 1;
            reason = ScaleReasons.HeldRequests;
        }
        if (policy.LoraAware && s.Lora.SlotBound && want <= engines)
        {
            want = engines + 1;
            reason = ScaleReasons.LoraSlotBound;
        }

        var desired = want;
        var message = "";
        if (desired > engines)
        {
            var cap = Math.Max(engines + 1, (int)Math.Ceiling(engines * policy.MaxScaleUpRate));
            desired = Math.Min(desired, cap);
        }
        else if (desired < engines)
        {
            desired = Math.Max(desired, (int)Math.Floor(engines / policy.MaxScaleDownRate));
        }
        desired = Math.Clamp(desired, policy.MinEngines, policy.MaxEngines);

        _recommendations.Enqueue((now, desired));
        while (_recommendations.Peek().At <= now - policy.ScaleDownStabilization) _recommendations.Dequeue();
        if (desired < engines)
        {
            var stabilized = Math.Min(engines, _recommendations.Max(r => r.Count));
            var cooling = _lastScaleUp is { } up && now - up < policy.ScaleDownDelay;
            var zeroGrace = stabilized == 0 && (_idleSince is not { } idle || now - idle < policy.ScaleToZeroGrace);
            var next = cooling ? engines : zeroGrace ? Math.Max(1, stabilized) : stabilized;
            if (next != desired)
            {
                message = cooling ? $"cooldown: last scale-up at {_lastScaleUp:O}, scale-down delay {policy.ScaleDownDelay.TotalSeconds:0.#} s"
                    : zeroGrace ? $"idle for less than the {policy.ScaleToZeroGrace.TotalSeconds:0.#} s scale-to-zero grace"
                    : $"stabilization: {stabilized} engines recommended within {policy.ScaleDownStabilization.TotalSeconds:0.#} s";
                reason = ScaleReasons.ScaleDownHeld;
            }
            desired = next;
        }
        if (desired == 0 && engines > 0) reason = ScaleReasons.ScaleToZero;
        if (desired > engines) _lastScaleUp = now;

        if (message.Length == 0)
            message = string.Create(CultureInfo.InvariantCulture,
                $"concurrency stable {stable:0.##} / panic {panic:0.##} at target {policy.TargetConcurrencyPerEngine:0.##} per engine; want {want}, bounds [{policy.MinEngines}, {policy.MaxEngines}]{(s.Lora.SlotBound ? "; slot-bound" : "")}");
        return Record(new ScaleDecision(policy.Pool, now, engines, desired, panicking ? ScaleMode.Panic : ScaleMode.Stable, reason, message,
            stable, panic, s));
    }

    private string? Frozen(PoolSignals? signals, DateTimeOffset now)
    {
        if (signals is null) return "no observation of the pool yet";
        if (signals.Missing.Count > 0) return "sources did not answer: " + string.Join(", ", signals.Missing);
        var age = now - signals.ObservedAt;
        if (age > policy.MaxSignalAge)
            return string.Create(CultureInfo.InvariantCulture, $"signals are {age.TotalSeconds:0.#} s old (limit {policy.MaxSignalAge.TotalSeconds:0.#} s)");
        return null;
    }

    private ScaleDecision Record(ScaleDecision decision)
    {
        _lastDesired = decision.Desired;
        return decision;
    }

    private int EnginesFor(double concurrency) => (int)Math.Ceiling(concurrency / policy.TargetConcurrencyPerEngine - 1e-9);

    private double StableAverage(DateTimeOffset now) => Average(now - policy.StableWindow);

    private double PanicAverage(DateTimeOffset now) => Average(now - policy.PanicWindow);

    private double Average(DateTimeOffset after)
    {
        double sum = 0;
        var n = 0;
        foreach (var (at, c) in _samples)
        {
            if (at <= after) continue;
            sum += c;
            n++;
        }
        return n == 0 ? 0 : sum / n;
    }
}
