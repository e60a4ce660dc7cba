using HybridServing.Autoscaler.Decisions;
using Microsoft.Extensions.Time.Testing;

namespace HybridServing.Autoscaler.Tests.Decisions;

/// <summary>The decision core over a fake clock: KPA windows, rate limits, stabilization, zero, the LoRA rule, frozen data.</summary>
public sealed class PoolScalerTests
{
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    private static PoolPolicy Policy(Func<PoolPolicy, PoolPolicy>? change = null)
    {
        var p = new PoolPolicy { Pool = "default", MinEngines = 0, MaxEngines = 10, TargetConcurrencyPerEngine = 4 };
        return change is null ? p : change(p);
    }

    private PoolSignals Load(int engines, double running, double waiting = 0, double held = 0, LoraPressure? lora = null) => new()
    {
        ObservedAt = _clock.GetUtcNow(),
        CurrentEngines = engines,
        Running = running,
        Waiting = waiting,
        HeldRequests = held,
        Lora = lora ?? LoraPressure.None,
    };

    /// <summary>Feeds a constant observation every <paramref name="every"/> for <paramref name="duration"/>; returns the last decision.</summary>
    private ScaleDecision Run(PoolScaler scaler, Func<PoolSignals> observe, TimeSpan duration, TimeSpan? every = null)
    {
        var step = every ?? TimeSpan.FromSeconds(2);
        ScaleDecision? last = null;
        for (var t = TimeSpan.Zero; t < duration; t += step)
        {
            _clock.Advance(step);
            last = scaler.Decide(observe(), _clock.GetUtcNow());
        }
        return last!;
    }

    [Fact]
    public void Stable_window_sizes_the_pool_to_concurrency_over_target()
    {
        var scaler = new PoolScaler(Policy());
        // 3 engines carrying 14 concurrent requests at target 4 → 4 engines once the window is full of it.
        var d = Run(scaler, () => Load(3, running: 12, waiting: 2), TimeSpan.FromSeconds(70));
        Assert.Equal(ScaleMode.Stable, d.Mode);
        Assert.Equal(ScaleReasons.StableLoad, d.Reason);
        Assert.Equal(4, d.Desired);
        Assert.Equal(14, d.StableConcurrency, 6);
        Assert.Same(d.Signals, d.Signals);
        Assert.Equal(3, d.Current);
    }

    [Fact]
    public void A_short_burst_moves_the_panic_window_not_the_stable_one()
    {
        var scaler = new PoolScaler(Policy());
        Run(scaler, () => Load(2, running: 6), TimeSpan.FromSeconds(60));
        // A burst to 40 for 6 s: the panic window asks for 10 = 5× the 2 engines → panic, scale up (rate-capped to 2×).
        var d = Run(scaler, () => Load(2, running: 40), TimeSpan.FromSeconds(6));
        Assert.Equal(ScaleMode.Panic, d.Mode);
        Assert.Equal(ScaleReasons.PanicLoad, d.Reason);
        Assert.Equal(4, d.Desired);
        Assert.True(d.StableConcurrency < d.PanicConcurrency);
    }

    [Fact]
    public void Panic_never_scales_down_and_ends_after_a_stable_window_without_panic()
    {
        var scaler = new PoolScaler(Policy(p => p with { ScaleDownDelay = TimeSpan.Zero, ScaleDownStabilization = TimeSpan.FromSeconds(1) }));
        Run(scaler, () => Load(2, running: 4), TimeSpan.FromSeconds(20));
        var burst = Run(scaler, () => Load(2, running: 40), TimeSpan.FromSeconds(4));
        Assert.Equal(ScaleMode.Panic, burst.Mode);
        // Load drops back while the pool runs 4. Within 60 s of the last panic trigger nothing goes down.
        var desired = new List<int>();
        ScaleDecision held = burst;
        for (var i = 0; i < 20; i++)
        {
            held = Run(scaler, () => Load(4, running: 2), TimeSpan.FromSeconds(2));
            desired.Add(held.Desired);
        }
        Assert.Equal(ScaleMode.Panic, held.Mode);
        Assert.True(desired.Zip(desired.Skip(1)).All(p => p.Second >= p.First) && desired[0] >= 4, string.Join(",", desired));
        var after = Run(scaler, () => Load(4, running: 2), TimeSpan.FromSeconds(30));
        Assert.Equal(ScaleMode.Stable, after.Mode);
        Assert.True(after.Desired < 4, $"desired {after.Desired}");
    }

    [Fact]
    public void Scale_up_is_rate_limited_and_bounded_by_max()
    {
        var scaler = new PoolScaler(Policy(p => p with { MaxEngines = 5, MaxScaleUpRate = 1.5 }));
        _clock.Advance(TimeSpan.FromSeconds(1));
        var d = scaler.Decide(Load(2, running: 100), _clock.GetUtcNow());
        Assert.Equal(3, d.Desired); // ceil(2 × 1.5)
        _clock.Advance(TimeSpan.FromSeconds(1));
        d = scaler.Decide(Load(4, running: 100), _clock.GetUtcNow());
        Assert.Equal(5, d.Desired); // min(ceil(4 × 1.5), max 5)
    }

    [Fact]
    public void Scale_down_waits_for_the_cooldown_and_the_stabilization_window()
    {
        var scaler = new PoolScaler(Policy(p => p with
        {
            ScaleDownDelay = TimeSpan.FromSeconds(30), ScaleDownStabilization = TimeSpan.FromSeconds(60), StableWindow = TimeSpan.FromSeconds(6),
        }));
        var up = Run(scaler, () => Load(2, running: 16), TimeSpan.FromSeconds(10));
        Assert.Equal(4, up.Desired);
        // Load vanishes right after the scale-up: the cooldown holds first…
        var cooling = Run(scaler, () => Load(4, running: 1), TimeSpan.FromSeconds(16));
        Assert.Equal(4, cooling.Desired);
        Assert.Equal(ScaleReasons.ScaleDownHeld, cooling.Reason);
        Assert.Contains("cooldown", cooling.Message, StringComparison.Ordinal);
        // …then the stabilization window remembers the 4 recommended in the last 60 s.
        var stabilizing = Run(scaler, () => Load(4, running: 1), TimeSpan.FromSeconds(20));
        Assert.Equal(4, stabilizing.Desired);
        Assert.Contains("stabilization", stabilizing.Message, StringComparison.Ordinal);
        // Once the window has only low recommendations, the pool halves (MaxScaleDownRate 2) towards 1.
        var down = Run(scaler, () => Load(4, running: 1), TimeSpan.FromSeconds(70));
        Assert.Equal(2, down.Desired);
        Assert.Equal(ScaleReasons.StableLoad, down.Reason);
    }

    [Fact]
    public void Min_engines_are_kept_even_when_idle()
    {
        var scaler = new PoolScaler(Policy(p => p with { MinEngines = 2, ScaleDownDelay = TimeSpan.Zero }));
        var d = Run(scaler, () => Load(3, running: 0), TimeSpan.FromSeconds(300));
        Assert.Equal(2, d.Desired);
    }

    [Fact]
    public void Scales_to_zero_only_after_the_idle_grace_and_back_from_zero_on_a_held_request()
    {
        var scaler = new PoolScaler(Policy(p => p with
        {
            ScaleDownDelay = TimeSpan.Zero, ScaleDownStabilization = TimeSpan.FromSeconds(2), StableWindow = TimeSpan.FromSeconds(6),
            ScaleToZeroGrace = TimeSpan.FromSeconds(30),
        }));
        var early = Run(scaler, () => Load(1, running: 0), TimeSpan.FromSeconds(20));
        Assert.Equal(1, early.Desired);
        Assert.Contains("scale-to-zero grace", early.Message, StringComparison.Ordinal);
        var zero = Run(scaler, () => Load(1, running: 0), TimeSpan.FromSeconds(20));
        Assert.Equal(0, zero.Desired);
        Assert.Equal(ScaleReasons.ScaleToZero, zero.Reason);

        // The gateway holds one request for the empty pool: wake one engine at once (no window to fill).
        _clock.Advance(TimeSpan.FromSeconds(2));
        var wake = scaler.Decide(Load(0, running: 0, held: 1), _clock.GetUtcNow());
        Assert.Equal(1, wake.Desired);
        Assert.Equal(ScaleReasons.ScaleFromZero, wake.Reason);
    }

    [Fact]
    public void A_held_request_wakes_one_more_engine_however_idle_the_awake_ones_are()
    {
        // One engine awake and idle; the gateway holds a request whose adapter only sleeping engines hold.
        var scaler = new PoolScaler(Policy(p => p with { MinEngines = 1, MaxEngines = 3 }));
        var decision = Run(scaler, () => Load(1, running: 0, held: 1), TimeSpan.FromSeconds(4));
        Assert.Equal(2, decision.Desired);
        Assert.Equal(ScaleReasons.HeldRequests, decision.Reason);
    }

    [Fact]
    public void A_request_resets_the_idle_grace()
    {
        var scaler = new PoolScaler(Policy(p => p with
        {
            ScaleDownDelay = TimeSpan.Zero, ScaleDownStabilization = TimeSpan.FromSeconds(2), StableWindow = TimeSpan.FromSeconds(6),
            ScaleToZeroGrace = TimeSpan.FromSeconds(30),
        }));
        Run(scaler, () => Load(1, running: 0), TimeSpan.FromSeconds(24));
        _clock.Advance(TimeSpan.FromSeconds(2));
        scaler.Decide(Load(1, running: 1), _clock.GetUtcNow());
        var d = Run(scaler, () => Load(1, running: 0), TimeSpan.FromSeconds(20));
        Assert.Equal(1, d.Desired);
    }

    [Theory]
    [InlineData(1, 0, 0, 0, 0)]   // an adapter short of its replicas
    [InlineData(0, 3, 0, 0, 0)]   // overflow loads refused
    [InlineData(0, 0, 8, 8, 2)]   // every slot busy with adapters waiting
    public void A_slot_bound_pool_scales_up_while_its_gpus_look_idle(int shortOfReplicas, long refusals, int slots, int occupied, int waitingLora)
    {
        var scaler = new PoolScaler(Policy());
        var lora = new LoraPressure(shortOfReplicas, refusals, slots, occupied, waitingLora);
        Assert.True(lora.SlotBound);
        var d = Run(scaler, () => Load(2, running: 2, lora: lora), TimeSpan.FromSeconds(10));
        Assert.Equal(3, d.Desired);
        Assert.Equal(ScaleReasons.LoraSlotBound, d.Reason);
        Assert.Contains("slot-bound", d.Message, StringComparison.Ordinal);

        // The same pool without the LoRA signal (KPA as is) scales down instead.
        var plain = new PoolScaler(Policy(p => p with { LoraAware = false }));
        Assert.True(Run(plain, () => Load(2, running: 2, lora: lora), TimeSpan.FromSeconds(10)).Desired <= 2);
    }

    [Fact]
    public void Free_slots_with_waiting_adapters_are_not_slot_bound()
    {
        Assert.False(new LoraPressure(0, 0, 8, 7, 3).SlotBound);
        Assert.False(new LoraPressure(0, 0, 8, 8, 0).SlotBound);
    }

    [Fact]
    public void Lora_rule_respects_max_engines()
    {
        var scaler = new PoolScaler(Policy(p => p with { MaxEngines = 2 }));
        var d = Run(scaler, () => Load(2, running: 0, lora: new LoraPressure(1, 0, 0, 0, 0)), TimeSpan.FromSeconds(10));
        Assert.Equal(2, d.Desired);
    }

    [Fact]
    public void Missing_or_stale_signals_freeze_the_count_and_never_scale_to_zero()
    {
        var scaler = new PoolScaler(Policy(p => p with
        {
            ScaleDownDelay = TimeSpan.Zero, ScaleDownStabilization = TimeSpan.FromSeconds(2), ScaleToZeroGrace = TimeSpan.Zero,
            MaxSignalAge = TimeSpan.FromSeconds(10),
        }));
        Run(scaler, () => Load(3, running: 10), TimeSpan.FromSeconds(10));

        _clock.Advance(TimeSpan.FromSeconds(2));
        var missing = scaler.Decide(Load(3, running: 0) with { Missing = ["engine e1 /metrics"] }, _clock.GetUtcNow());
        Assert.Equal(ScaleMode.Frozen, missing.Mode);
        Assert.Equal(ScaleReasons.SignalsMissing, missing.Reason);
        Assert.Equal(3, missing.Desired);
        Assert.Contains("engine e1 /metrics", missing.Message, StringComparison.Ordinal);

        var stale = Load(3, running: 0);
        _clock.Advance(TimeSpan.FromSeconds(11));
        var old = scaler.Decide(stale, _clock.GetUtcNow());
        Assert.Equal(ScaleMode.Frozen, old.Mode);
        Assert.Equal(3, old.Desired);
        Assert.Contains("11 s old", old.Message, StringComparison.Ordinal);

        var none = scaler.Decide(null, _clock.GetUtcNow());
        Assert.Equal(3, none.Desired);
    }

    [Fact]
    public void The_first_decision_without_data_keeps_the_minimum()
    {
        var scaler = new PoolScaler(Policy(p => p with { MinEngines = 1 }));
        var d = scaler.Decide(null, _clock.GetUtcNow());
        Assert.Equal(ScaleMode.Frozen, d.Mode);
        Assert.Equal(1, d.Desired);
    }
}
