using Microsoft.Extensions.Hosting;

namespace HybridServing.MockEngine.Performance;

/// <summary>
/// Runs the <see cref="EngineModel"/> against a <see cref="TimeProvider"/> for the HTTP server:
/// plan a step, wait its duration divided by the time scale, complete it. Model time runs
/// <c>timeScale</c> times faster than the provider's clock, so metrics show what a GPU would.
/// Every access to the model goes through this class's lock.
/// </summary>
public sealed class RealTimeEngineDriver : BackgroundService
{
    private readonly object _gate = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly TimeProvider _time;
    private readonly double _timeScale;
    private readonly DateTimeOffset _origin;
    private DateTimeOffset _lastModelTime;
    private int _sleeping;
    private readonly IStepExecutor? _executor;

    /// <param name="executor">Computes each step for real (the ONNX backend); null: steps take the profile's modelled time.</param>
    public RealTimeEngineDriver(EngineModelOptions options, PerformanceProfile profile, TimeProvider time, double timeScale, IStepExecutor? executor = null)
    {
        _executor = executor;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(timeScale);
        _time = time;
        _timeScale = timeScale;
        _origin = time.GetUtcNow();
        _lastModelTime = _origin;
        Model = new EngineModel(options, profile, _origin);
    }

    /// <summary>The model; read it only inside <see cref="Read{T}"/>.</summary>
    internal EngineModel Model { get; }

    /// <summary>True while the loop waits on the clock for a step to end (its timer is registered).</summary>
    internal bool IsSleeping => Volatile.Read(ref _sleeping) == 1;

    /// <summary>Model seconds per wall-clock second.</summary>
    public double TimeScale => _timeScale;

    /// <summary>Model time now: the provider's clock sped up by the time scale, never going back.</summary>
    public DateTimeOffset ModelNow()
    {
        lock (_gate) return ModelNowLocked();
    }

    /// <summary>How long to wait on the provider's clock for <paramref name="modelTime"/> to pass.</summary>
    public TimeSpan ToWallClock(TimeSpan modelTime) => modelTime / _timeScale;

    public T Read<T>(Func<EngineModel, T> read)
    {
        lock (_gate) return read(Model);
    }

    public void Submit(ModelRequest request)
    {
        lock (_gate) Model.Submit(request, ModelNowLocked());
        Wake();
    }

    public bool Abort(ModelRequest request)
    {
        bool aborted;
        lock (_gate) aborted = Model.Abort(request, ModelNowLocked());
        Wake();
        return aborted;
    }

    /// <summary>Registers an adapter whose load started at <paramref name="startedAt"/> (model time; default now).</summary>
    public AdapterLoadRecord RegisterAdapter(AdapterSpec spec, DateTimeOffset? startedAt = null)
    {
        AdapterLoadRecord load;
        lock (_gate)
        {
            var now = ModelNowLocked();
            load = Model.RegisterAdapter(spec, startedAt is { } s && s < now ? s : now);
        }
        Wake();
        return load;
    }

    public bool UnregisterAdapter(string name)
    {
        bool removed;
        lock (_gate) removed = Model.UnregisterAdapter(name);
        Wake();
        return removed;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Yield so host start-up is not held by the loop.
        await Task.Yield();
        // A step that follows another back to back starts where that one ended in model time, not
        // at the clock's "now": timers fire late (whole milliseconds, thread-pool delay), and that
        // lateness must not become idle model time before every step. Aiming each wait at an
        // absolute instant lets the chain catch up with the clock by running steps without waiting.
        DateTimeOffset? previousEnd = null;
        while (!stoppingToken.IsCancellationRequested)
        {
            StepPlan? plan = null;
            lock (_gate)
            {
                if (Model.HasWork)
                {
                    plan = Model.BeginStep(previousEnd ?? ModelNowLocked());
                    // Only requests that arrived after the previous step ended are waiting: start when they came.
                    if (plan is null && previousEnd is not null) plan = Model.BeginStep(ModelNowLocked());
                }
            }
            previousEnd = null;
            if (plan is null)
            {
                try { await _signal.WaitAsync(stoppingToken).ConfigureAwait(false); }
                catch (OperationCanceledException) { return; }
                continue;
            }

            if (_executor is not null)
            {
                // The step takes what computing it takes, on the wall clock, scaled into model time.
                var started = _time.GetTimestamp();
                _executor.Execute(plan);
                var took = _time.GetElapsedTime(started) * _timeScale;
                lock (_gate) plan.UseMeasured(took);
            }

            // Wait until the wall-clock instant that maps to the step's end. Timers cannot wait less
            // than a millisecond, so shorter steps run back to back until the model is a full
            // millisecond ahead of the clock; aiming at absolute instants keeps the error below that.
            var wait = _origin + ToWallClock(plan.End - _origin) - _time.GetUtcNow();
            if (wait >= TimeSpan.FromMilliseconds(1))
            {
                // Timers truncate to whole milliseconds; round up so a step never ends early.
                var wholeMs = TimeSpan.FromMilliseconds(Math.Ceiling(wait.TotalMilliseconds));
                try
                {
                    var sleep = Task.Delay(wholeMs, _time, stoppingToken);
                    // The timer exists now: tests on a fake clock may advance it.
                    Volatile.Write(ref _sleeping, 1);
                    await sleep.ConfigureAwait(false);
                }
                catch (OperationCanceledException) { return; }
                finally { Volatile.Write(ref _sleeping, 0); }
            }
            lock (_gate)
            {
                Model.CompleteStep(plan);
                if (plan.End > _lastModelTime) _lastModelTime = plan.End;
                previousEnd = plan.End;
            }
        }
    }

    private DateTimeOffset ModelNowLocked()
    {
        var wall = _time.GetUtcNow();
        var model = _origin + (wall - _origin) * _timeScale;
        // Steps end at their planned model time; timer lateness must not make time run backwards.
        if (model < _lastModelTime) model = _lastModelTime;
        _lastModelTime = model;
        return model;
    }

    private void Wake()
    {
        if (_signal.CurrentCount == 0) _signal.Release();
    }

    public override void Dispose()
    {
        base.Dispose();
        _signal.Dispose();
    }
}
