namespace HybridServing.Autoscaler.Decisions;

/// <summary>The window mode a decision was taken in (KPA's stable and panic modes, or frozen on bad data).</summary>
public enum ScaleMode
{
    Stable,
    Panic,
    Frozen,
}

/// <summary>Why the desired count is what it is. Each is the reason of the Kubernetes Event too.</summary>
public static class ScaleReasons
{
    /// <summary>The stable window's average asks for this many engines.</summary>
    public const string StableLoad = "StableLoad";
    /// <summary>The panic window asked for at least PanicThreshold × current engines; scale-down is suspended.</summary>
    public const string PanicLoad = "PanicLoad";
    /// <summary>The pool is slot-bound (LoRA rule): one more engine although the GPUs may look idle.</summary>
    public const string LoraSlotBound = "LoraSlotBound";
    /// <summary>The pool had no engine and a request is waiting or held (activator).</summary>
    public const string ScaleFromZero = "ScaleFromZero";
    /// <summary>The gateway holds requests whose every engine sleeps: one more engine wakes, whatever the load on the others.</summary>
    public const string HeldRequests = "HeldRequests";
    /// <summary>A lower count is wanted but the cooldown, the stabilization window or the zero grace holds it.</summary>
    public const string ScaleDownHeld = "ScaleDownHeld";
    /// <summary>The pool has been idle for the grace period and its minimum is zero.</summary>
    public const string ScaleToZero = "ScaleToZero";
    /// <summary>Signals are missing or stale; the current count stays (never scales to zero on missing data).</summary>
    public const string SignalsMissing = "SignalsMissing";
}

/// <summary>A decision and everything it was made from, so it can be logged, exported and evented as is.</summary>
public sealed record ScaleDecision(
    string Pool,
    DateTimeOffset At,
    int Current,
    int Desired,
    ScaleMode Mode,
    string Reason,
    string Message,
    double StableConcurrency,
    double PanicConcurrency,
    PoolSignals? Signals)
{
    public bool Changes => Desired != Current;
}
