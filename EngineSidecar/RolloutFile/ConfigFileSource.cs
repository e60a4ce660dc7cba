using System.Security.Cryptography;
using System.Threading.Channels;
using HybridServing.EngineSidecar.Artifacts;
using HybridServing.EngineSidecar.Configuration;
using HybridServing.EngineSidecar.Engines;
using HybridServing.EngineSidecar.Reconciliation;
using HybridServing.EngineSidecar.Telemetry;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HybridServing.EngineSidecar.RolloutFile;

/// <summary>
/// File mode: the desired set comes from a vLLMLoRAConfig file. Changes are picked up by a directory watcher and,
/// because Kubernetes updates a mounted ConfigMap by swapping the <c>..data</c> symlink (which some watchers
/// miss), also by comparing the file's content hash every reconcile interval.
/// The lora-syncer's semantics: ensureExist is loaded, ensureNotExist is unloaded, anything else on the engine is left
/// alone, and a name in both lists is reported and skipped.
/// </summary>
internal sealed class ConfigFileSource(
    AdapterStateStore store,
    SidecarOptions options,
    ResilientEngineClient engine,
    SidecarMetrics metrics,
    ILogger<ConfigFileSource> logger) : BackgroundService
{
    private string? _lastHash;
    private long _generation;
    private bool _reportedMissing;

    /// <summary>The config the sidecar currently follows; null until a valid file was read.</summary>
    public LoraRolloutConfig? Current { get; private set; }

    /// <summary>Why the file last could not be used (shown by <c>/status</c>); null once it was read and applied.</summary>
    public string? Problem { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var path = Path.GetFullPath(options.EffectiveConfigFile);
        var signal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
        using var watcher = CreateWatcher(path, () => signal.Writer.TryWrite(true));
        var interval = SidecarOptions.Seconds(options.ReconcileIntervalSeconds);
        while (!stoppingToken.IsCancellationRequested)
        {
            ReadIfChanged(path);
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            wait.CancelAfter(interval);
            try
            {
                await signal.Reader.WaitToReadAsync(wait.Token);
                signal.Reader.TryRead(out _);
                // Let a burst of writes (editor save, symlink swap) settle before reading.
                await Task.Delay(TimeSpan.FromMilliseconds(50), stoppingToken);
            }
            catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
            {
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    private static FileSystemWatcher? CreateWatcher(string path, Action changed)
    {
        var dir = Path.GetDirectoryName(path);
        if (dir is null || !Directory.Exists(dir)) return null;
        var watcher = new FileSystemWatcher(dir)
        {
            IncludeSubdirectories = false,
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
        };
        watcher.Changed += (_, _) => changed();
        watcher.Created += (_, _) => changed();
        watcher.Deleted += (_, _) => changed();
        watcher.Renamed += (_, _) => changed();
        watcher.EnableRaisingEvents = true;
        return watcher;
    }

    /// <summary>Reads the file (through any symlinks) and applies it when its content changed.</summary>
    internal bool ReadIfChanged(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Problem = $"cannot read {path}: {e.Message}";
            if (!_reportedMissing)
            {
                Log.ConfigInvalid(logger, path, $"cannot read it: {e.Message}");
                metrics.Failure(FailureReasons.InvalidConfig);
                _reportedMissing = true;
            }
            return false;
        }
        _reportedMissing = false;
        var hash = Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));
        if (hash == _lastHash) return false;
        _lastHash = hash;

        LoraRolloutConfig config;
        try
        {
            config = LoraRolloutConfig.Parse(text, options.ConfigValidation);
        }
        catch (FormatException e)
        {
            Log.ConfigInvalid(logger, path, e.Message);
            metrics.Failure(FailureReasons.InvalidConfig);
            Problem = $"{path} is invalid, the previous desired set is kept: {e.Message}";
            return false;
        }
        foreach (var warning in config.Warnings) Log.ConfigEntrySkipped(logger, warning);
        foreach (var conflict in config.Conflicts)
        {
            Log.ConfigConflict(logger, conflict);
            metrics.Failure(FailureReasons.ConfigConflict);
        }
        var previousEngine = engine.BaseAddress;
        if (engine.Retarget(config.EngineUrl))
        {
            // Another engine holds none of our adapters: the next pass loads the desired set there.
            Log.ConfigEngineChanged(logger, path, config.EngineUrl.ToString(), previousEngine.ToString());
            store.SetInfo(info => { info.EngineUrl = config.EngineUrl.ToString(); return info; });
            store.RequestReconcile();
        }

        Current = config;
        Problem = null;
        store.SetDesired(config.Desired(), ++_generation, UnloadScope.Listed,
            listedForUnload: config.ToUnload, skipped: config.Conflicts);
        Log.ConfigRead(logger, path, config.Desired().Count, config.ToUnload.Count);
        return true;
    }

    /// <summary>The engine URL in file mode when Sidecar:EngineUrl is not set: the file's host and port
    /// (defaults localhost:8000, as in the lora-syncer).</summary>
    public static Uri EngineUrlFromFile(string path, bool validate)
    {
        try
        {
            return LoraRolloutConfig.Parse(File.ReadAllText(path), validate).EngineUrl;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return new Uri("http://localhost:8000");
        }
    }
}
