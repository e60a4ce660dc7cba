using HybridServing.Contracts.Telemetry;
using System.Diagnostics;
using Google.Protobuf.WellKnownTypes;
using HybridServing.Contracts.OpenAi;
using HybridServing.Contracts.Sidecar;
using HybridServing.EngineSidecar.Artifacts;
using HybridServing.EngineSidecar.Configuration;
using HybridServing.EngineSidecar.Engines;
using HybridServing.EngineSidecar.Telemetry;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HybridServing.EngineSidecar.Reconciliation;

/// <summary>
/// Drives one engine towards the desired set, level-based: every pass compares the desired set with what the
/// engine's <c>/v1/models</c> says it holds, unloads what is not wanted, and downloads, validates and loads what is
/// missing or changed. One pass runs at a time (engines serialise adapter loads anyway). A poller watches the
/// engine's health, adapters and load every <c>EnginePollIntervalSeconds</c>; when the engine loses adapters
/// (restart, crash, an outside unload) or comes back healthy, it asks for a pass at once: that is drift repair.
/// </summary>
internal sealed class EngineReconciler(
    ResilientEngineClient engine,
    AdapterStateStore store,
    ArtifactCache cache,
    SidecarOptions options,
    SidecarMetrics metrics,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    TraceHandoff traces,
    ILogger<EngineReconciler> logger) : BackgroundService
{
    private volatile bool _healthy;
    private volatile bool _synced;

    /// <summary>True once the engine was healthy and one pass has completed; the readiness check uses it.</summary>
    public bool Ready => _healthy && _synced;
    public bool EngineHealthy => _healthy;

    private readonly FailureRepeats _passFailures = new();
    private readonly FailureRepeats _pollFailures = new();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        SetInfoFromOptions();
        if (!await WaitForHealthAsync(stoppingToken)) return;
        var poller = PollAsync(stoppingToken);
        var interval = SidecarOptions.Seconds(options.ReconcileIntervalSeconds);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ReconcileOnceAsync(stoppingToken);
                _passFailures.Succeeded();
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                Log.ReconcileFailed(logger, _passFailures, e.Message, e);
            }
            try
            {
                await store.WaitForReconcileRequestAsync(interval, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        try { await poller; } catch (OperationCanceledException) { }
        cache.Stop();
    }

    private void SetInfoFromOptions() => store.SetInfo(info =>
    {
        info.EngineKind = options.EngineKind;
        info.EngineUrl = AdvertisedEngine.Url(options, engine.BaseAddress).ToString();
        info.PodName = options.PodName ?? "";
        info.NodeName = options.NodeName ?? "";
        info.MaxLoraRank = options.MaxLoraRank;
        info.CacheBudgetBytes = options.CacheBudgetBytes;
        info.AdapterMemoryBudgetBytes = options.AdapterMemoryBudgetBytes;
        info.MaxLoras = options.MaxLoras ?? (info.MaxLoras == 0 ? 1 : info.MaxLoras);
        info.MaxCpuLoras = options.MaxCpuLoras ?? info.MaxLoras;
        return info;
    });

    /// <summary>Waits, bounded, for the engine's first healthy answer (the lora-syncer's --health-check-timeout).</summary>
    private async Task<bool> WaitForHealthAsync(CancellationToken stoppingToken)
    {
        var timeout = SidecarOptions.Seconds(options.EngineHealthTimeoutSeconds);
        var interval = SidecarOptions.Seconds(options.EngineHealthIntervalSeconds);
        var started = time.GetTimestamp();
        Log.WaitingForEngine(logger, engine.BaseAddress.ToString(), timeout.TotalSeconds);
        while (!stoppingToken.IsCancellationRequested)
        {
            if (await engine.IsHealthyAsync(stoppingToken))
            {
                Log.EngineHealthy(logger, engine.BaseAddress.ToString());
                SetHealthy(true);
                return true;
            }
            if (time.GetElapsedTime(started) >= timeout)
            {
                Log.EngineHealthTimeout(logger, engine.BaseAddress.ToString(), timeout.TotalSeconds);
                // Like the lora-syncer's sidecar: exit non-zero and let the pod's restart policy (or the AppHost) act.
                Environment.ExitCode = 1;
                lifetime.StopApplication();
                return false;
            }
            try { await Task.Delay(interval, time, stoppingToken); }
            catch (OperationCanceledException) { return false; }
        }
        return false;
    }

    private void SetHealthy(bool healthy)
    {
        _healthy = healthy;
        metrics.EngineHealthy.Set(healthy ? 1 : 0);
    }

    /// <summary>Polls health, adapters and load; requests a pass when the engine drifted or recovered.</summary>
    private async Task PollAsync(CancellationToken stoppingToken)
    {
        var interval = SidecarOptions.Seconds(options.EnginePollIntervalSeconds);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await PollOnceAsync(stoppingToken);
                _pollFailures.Succeeded();
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                Log.ReconcileFailed(logger, _pollFailures, "engine poll: " + e.Message, e);
            }
            await Task.Delay(interval, time, stoppingToken);
        }
    }

    internal async Task PollOnceAsync(CancellationToken cancellationToken)
    {
        var healthy = await engine.IsHealthyAsync(cancellationToken);
        if (healthy != _healthy)
        {
            SetHealthy(healthy);
            if (healthy) Log.EngineHealthy(logger, engine.BaseAddress.ToString());
            else Log.EngineUnhealthy(logger, engine.BaseAddress.ToString());
            // Back from a restart: its adapters are gone. Unhealthy: report it at once.
            store.RequestReconcile();
        }
        var load = healthy ? await engine.GetLoadAsync(cancellationToken) : null;
        var proto = new EngineLoad { Healthy = healthy, Observed = Timestamp.FromDateTimeOffset(time.GetUtcNow()) };
        if (load is not null)
        {
            proto.Running = (int)load.Running;
            proto.Waiting = (int)load.Waiting;
            proto.KvCacheUsage = load.KvCacheUsage;
            proto.Sleeping = load.Sleeping;
            proto.RunningAdapters.AddRange(load.RunningAdapters);
            proto.WaitingAdapters.AddRange(load.WaitingAdapters);
            store.SetResidency(load.Residency);
            if (options.MaxLoras is null && load.MaxLoras is { } max)
                store.SetInfo(info => { info.MaxLoras = max; info.MaxCpuLoras = options.MaxCpuLoras ?? max; return info; });
        }
        store.SetLoad(proto);
        if (!healthy) return;

        if (await engine.TryListModelsOnceAsync(cancellationToken) is not { } models) return;
        UpdateBaseModels(models);
        if (Drifted(models, store.Inputs())) store.RequestReconcile();
    }

    /// <summary>True when the engine lacks a desired adapter that should be loaded, or holds one to unload.</summary>
    internal static bool Drifted(IReadOnlyList<ModelCard> models, ReconcileInputs inputs)
    {
        var actual = Adapters(models);
        foreach (var (name, record) in inputs.Records)
        {
            if (record.Spec is not null && record.Phase == AdapterPhase.Loaded && !actual.ContainsKey(name)) return true;
            if (record.Spec is null && actual.ContainsKey(name)) return true;
        }
        return actual.Keys.Any(n => ShouldUnload(n, inputs));
    }

    private static Dictionary<string, string?> Adapters(IReadOnlyList<ModelCard> models)
    {
        var result = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var m in models)
        {
            if (m.Parent is not null) result.TryAdd(m.Id, m.Root);
        }
        return result;
    }

    private static bool ShouldUnload(string name, ReconcileInputs inputs) =>
        !inputs.Desired.ContainsKey(name) && !inputs.Skipped.Contains(name) && (
            inputs.ExplicitUnloads.Contains(name)
            || inputs.Scope == UnloadScope.AllUndesired
            || (inputs.Scope == UnloadScope.Listed && inputs.ListedForUnload.Contains(name)));

    private void UpdateBaseModels(IReadOnlyList<ModelCard> models)
    {
        var bases = models.Where(m => m.Parent is null).Select(m => m.Id).ToList();
        store.SetInfo(info =>
        {
            if (!info.BaseModels.SequenceEqual(bases))
            {
                info.BaseModels.Clear();
                info.BaseModels.AddRange(bases);
            }
            return info;
        });
    }

    /// <summary>One level-based pass: unload the unwanted, then resolve and load the missing or changed.</summary>
    internal async Task ReconcileOnceAsync(CancellationToken cancellationToken)
    {
        if (!_healthy) return;
        using var activity = traces.StartActivity(SidecarMetrics.ActivitySource, "reconcile");
        IReadOnlyList<ModelCard> models;
        try
        {
            models = await engine.ListModelsAsync(cancellationToken);
        }
        catch (EngineUnavailableException e)
        {
            Log.ReconcileFailed(logger, _passFailures, e.Message, e);
            return;
        }
        UpdateBaseModels(models);
        var actual = Adapters(models);
        var inputs = store.Inputs();

        await UnloadUnwantedAsync(actual, inputs, cancellationToken);
        await LoadMissingAsync(actual, inputs, cancellationToken);

        var after = store.Inputs();
        cache.SetInUse(after.Records.Values.Where(r => r.Spec is not null && r.Digest.Length > 0).Select(r => r.Digest));
        _synced = true;
    }

    private async Task UnloadUnwantedAsync(Dictionary<string, string?> actual, ReconcileInputs inputs, CancellationToken cancellationToken)
    {
        // Records waiting to be unloaded whose adapter the engine no longer has are done.
        foreach (var (name, record) in inputs.Records)
        {
            if (record.Spec is null && !actual.ContainsKey(name)) store.Unloaded(name);
        }
        var now = time.GetUtcNow();
        foreach (var name in actual.Keys.Where(n => ShouldUnload(n, inputs)))
        {
            // An engine that keeps refusing an unload is asked again with backoff, not on every poll.
            if (inputs.Records.TryGetValue(name, out var previous) && previous.Reason == FailureReasons.UnloadFailed && previous.NextAttempt > now)
                continue;
            store.TrackUnloading(name);
            var result = await engine.UnloadAsync(name, cancellationToken);
            if (result.Success || result.StatusCode == 404)
            {
                store.Unloaded(name);
                Log.AdapterUnloaded(logger, name);
            }
            else
            {
                store.Update(name, null, r =>
                {
                    r.Phase = AdapterPhase.Failed;
                    r.Reason = FailureReasons.UnloadFailed;
                    r.Message = $"The engine refused to unload: {result.StatusCode} {result.Message}";
                    r.Failures++;
                    r.NextAttempt = now + TimeSpan.FromSeconds(Math.Min(60, Math.Pow(2, r.Failures - 1)));
                });
                Log.UnloadFailed(logger, name, result.Message);
            }
        }
    }

    private async Task LoadMissingAsync(Dictionary<string, string?> actual, ReconcileInputs inputs, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var work = new List<(DesiredAdapter Spec, AdapterRecord Record)>();
        foreach (var (name, spec) in inputs.Desired)
        {
            if (!inputs.Records.TryGetValue(name, out var record) || record.Spec != spec) continue;
            if (record.PermanentlyFailed) continue;
            var present = actual.ContainsKey(name);
            if (present && record.LoadedFingerprint == spec.Fingerprint)
            {
                if (record.Phase != AdapterPhase.Loaded)
                    store.Update(name, spec, r => { r.Phase = AdapterPhase.Loaded; r.Reason = ""; r.Message = ""; });
                continue;
            }
            if (!present && record.Phase == AdapterPhase.Loaded)
            {
                // The engine lost it: repair now, whatever backoff a past failure left behind.
                Log.DriftDetected(logger, name);
                metrics.DriftRepairs.Inc();
                store.Update(name, spec, r =>
                {
                    r.Phase = AdapterPhase.Pending;
                    r.LoadedFingerprint = null;
                    r.Message = "The engine lost this adapter (restart or outside unload); reloading.";
                });
            }
            else if (record.Phase == AdapterPhase.Failed && record.NextAttempt > now)
            {
                continue;
            }
            work.Add((spec, record));
        }
        if (work.Count == 0) return;

        var bases = store.Info.BaseModels.ToHashSet(StringComparer.Ordinal);
        // Downloads run in parallel (bounded by the cache); loads go to the engine one at a time.
        var resolutions = work.Select(w => (w.Spec, w.Record, Task: ResolveAsync(w.Spec, bases, cancellationToken))).ToList();
        foreach (var (spec, record, task) in resolutions)
        {
            ResolvedArtifact? artifact;
            try
            {
                artifact = await task;
            }
            catch (ArtifactException e)
            {
                Fail(spec, e.Reason, e.Message);
                continue;
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // An unexpected failure (disk full, permissions, an SDK error we did not map) fails this adapter
                // only; the others in the pass still load.
                Fail(spec, FailureReasons.DownloadFailed, $"Resolving the artifact failed unexpectedly: {e.GetType().Name}: {e.Message}");
                continue;
            }
            await LoadAsync(spec, artifact, actual, cancellationToken);
        }
    }

    private async Task<ResolvedArtifact> ResolveAsync(DesiredAdapter spec, IReadOnlySet<string> baseModels, CancellationToken cancellationToken)
    {
        await Task.Yield();
        var source = AdapterSource.Parse(spec.Source) with { Credentials = spec.CredentialsSecret };
        if (spec.BaseModel is { } baseModel && baseModels.Count > 0 && !baseModels.Contains(baseModel))
            throw new ArtifactException(FailureReasons.BaseModelMismatch,
                $"The adapter is for base model '{baseModel}', but the engine serves {string.Join(", ", baseModels.Select(b => $"'{b}'"))}.");
        if (source.Kind != AdapterSourceKind.Local)
            store.Update(spec.Name, spec, r => { r.Phase = AdapterPhase.Downloading; r.Reason = ""; r.Message = ""; r.BytesDownloaded = 0; r.BytesTotal = 0; });
        var lastReport = 0L;
        var artifact = await cache.ResolveAsync(source, spec.Sha256, (done, total) =>
        {
            // Report progress at most every 1 MiB: watchers get a stream of snapshots, not one per buffer.
            if (done - Interlocked.Read(ref lastReport) < (1 << 20) && done != total) return;
            Interlocked.Exchange(ref lastReport, done);
            store.Update(spec.Name, spec, r => { r.BytesDownloaded = done; r.BytesTotal = total ?? 0; });
        }, cancellationToken);
        if (artifact.Info.Config.Validate(options.MaxLoraRank) is { } problem)
            throw new ArtifactException(problem.StartsWith("LoRA rank", StringComparison.Ordinal) && problem.Contains("max_lora_rank", StringComparison.Ordinal)
                ? FailureReasons.RankTooLarge : FailureReasons.InvalidAdapter, problem);
        return artifact;
    }

    private async Task LoadAsync(DesiredAdapter spec, ResolvedArtifact artifact, Dictionary<string, string?> actual, CancellationToken cancellationToken)
    {
        var name = spec.Name;
        var present = actual.TryGetValue(name, out var root);
        void Describe(AdapterRecord r)
        {
            r.Digest = artifact.Digest;
            r.LocalPath = artifact.Path;
            r.Rank = artifact.Info.Rank;
            r.SizeBytes = artifact.Info.SizeBytes;
            if (artifact.Downloaded) r.BytesDownloaded = r.BytesTotal = artifact.DownloadedBytes;
        }
        if (present && root == artifact.Path && HasNoLoadedFingerprint(name))
        {
            // A restarted sidecar finds its adapter already loaded from the same files: adopt it.
            store.Update(name, spec, r => { Describe(r); r.Phase = AdapterPhase.Loaded; r.Reason = ""; r.Message = ""; r.LoadedFingerprint = spec.Fingerprint; r.Failures = 0; });
            return;
        }
        if (!store.Update(name, spec, r => { Describe(r); r.Phase = AdapterPhase.Loading; r.Reason = ""; r.Message = present ? "Reloading in place." : ""; }))
            return; // The spec changed meanwhile; the next pass handles the new one.
        var stopwatch = Stopwatch.StartNew();
        var result = await engine.LoadAsync(name, artifact.Path, inPlace: present, cancellationToken, spec.Pinned);
        metrics.LoadDuration.WithLabels(result.Success ? "success" : "failure").Observe(stopwatch.Elapsed.TotalSeconds);
        if (result.Success)
        {
            store.Update(name, spec, r => { r.Phase = AdapterPhase.Loaded; r.Reason = ""; r.Message = ""; r.LoadedFingerprint = spec.Fingerprint; r.Failures = 0; });
            Log.AdapterLoaded(logger, name, artifact.Path, present, stopwatch.ElapsedMilliseconds);
            return;
        }
        if (!present && result.StatusCode == 400 && result.Message.Contains("has already been loaded", StringComparison.Ordinal))
        {
            // The engine gained it between our list and our load (another client): decide again on fresh state.
            store.Update(name, spec, r => { r.Phase = AdapterPhase.Pending; r.Message = "The engine already had this name; re-checking."; });
            store.RequestReconcile();
            return;
        }
        var reason = ResilientEngineClient.IsTransient(result) ? FailureReasons.EngineUnavailable : FailureReasons.EngineRejected;
        Fail(spec, reason, $"The engine answered {result.StatusCode}: {result.Message}");
    }

    private bool HasNoLoadedFingerprint(string name) =>
        store.Inputs().Records.TryGetValue(name, out var r) && r.LoadedFingerprint is null;

    private void Fail(DesiredAdapter spec, string reason, string message)
    {
        var now = time.GetUtcNow();
        store.Update(spec.Name, spec, r =>
        {
            r.Phase = AdapterPhase.Failed;
            r.Reason = reason;
            r.Message = message;
            r.Failures++;
            // Exponential backoff (1 s, 2 s, 4 s ... 60 s): a broken artifact must not hammer the engine or the store.
            r.NextAttempt = now + TimeSpan.FromSeconds(Math.Min(60, Math.Pow(2, r.Failures - 1)));
        });
        Log.AdapterFailed(logger, spec.Name, reason, message);
    }
}
