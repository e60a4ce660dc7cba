using System.Security.Cryptography;
using System.Text;
using System.Threading.Channels;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Resources;
using k8s;
using Microsoft.Extensions.Options;

namespace HybridServing.ControlPlane.Homes;

/// <summary>
/// The local home: LoraAdapters from a watched folder of YAML files (several documents per file
/// allowed; a broken file is reported on its own and holds up nothing else), engines from
/// configuration, status kept in memory and served over HTTP in Kubernetes shape.
/// </summary>
internal sealed partial class LocalHome : IControlPlaneHome, IAsyncDisposable
{
    private readonly ControlPlaneOptions _options;
    private readonly TimeProvider _time;
    private readonly LoraAdapterStore _store;
    private readonly ILogger<LocalHome> _logger;
    private readonly IReadOnlyList<EngineEndpoint> _engines;
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Dictionary<string, (string Hash, ManifestFile Parsed)> _files = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ObjectIdentity> _identities = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private FileSystemWatcher? _watcher;
    private Task? _loop;
    private string _lastFingerprint = "";
    private volatile HomeSnapshot _current = HomeSnapshot.Empty;
    private volatile bool _synced;

    private sealed record ObjectIdentity(string SpecJson, long Generation, DateTime Created, string Uid);

    public LocalHome(IOptions<ControlPlaneOptions> options, TimeProvider time, LoraAdapterStore store, ILogger<LocalHome> logger)
    {
        _options = options.Value;
        _time = time;
        _store = store;
        _logger = logger;
        _engines = [.. _options.Engines.Select(e => new EngineEndpoint(e.Name, e.Node ?? "", new Uri(e.SidecarUrl), new Dictionary<string, string>(e.Labels, StringComparer.Ordinal)))];
    }

    public string Kind => "Local";
    public HomeSnapshot Current => _current;
    public bool Synced => _synced;
    public event Action? Changed;

    /// <summary>The manifests folder, absolute.</summary>
    public string? ManifestsPath => _options.ManifestsPath is { Length: > 0 } p ? Path.GetFullPath(p) : null;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        Rescan();
        TryStartWatcher();
        _loop = Task.Run(() => LoopAsync(_stop.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    public ValueTask WriteStatusAsync(IReadOnlyList<LoraAdapter> adapters, CancellationToken cancellationToken)
    {
        _store.ReplaceAll(adapters);
        return ValueTask.CompletedTask;
    }

    /// <summary>Re-reads the folder now (tests and the file watcher use it; the loop also polls).</summary>
    public void RequestRescan() => _wake.Writer.TryWrite(true);

    private async Task LoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                using var poll = CancellationTokenSource.CreateLinkedTokenSource(ct);
                poll.CancelAfter(_options.ManifestPollInterval);
                try { await _wake.Reader.ReadAsync(poll.Token); }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested) { }
                // Editors write files in several steps; let a burst of events settle before reading.
                await Task.Delay(TimeSpan.FromMilliseconds(100), _time, ct);
                while (_wake.Reader.TryRead(out _)) { }
                TryStartWatcher();
                Rescan();
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                LogRescanFailed(_logger, e);
            }
        }
    }

    private void TryStartWatcher()
    {
        if (_watcher is not null || ManifestsPath is not { } path || !Directory.Exists(path)) return;
        try
        {
            var watcher = new FileSystemWatcher(path) { IncludeSubdirectories = false, NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime };
            watcher.Changed += (_, _) => RequestRescan();
            watcher.Created += (_, _) => RequestRescan();
            watcher.Deleted += (_, _) => RequestRescan();
            watcher.Renamed += (_, _) => RequestRescan();
            watcher.Error += (_, _) => RequestRescan();
            watcher.EnableRaisingEvents = true;
            _watcher = watcher;
        }
        catch (Exception e) when (e is IOException or ArgumentException or PlatformNotSupportedException)
        {
            // Polling still picks changes up.
            LogWatcherUnavailable(_logger, path, e.Message);
        }
    }

    internal void Rescan()
    {
        var problems = new List<DeclarationProblem>();
        var declared = new List<DeclaredAdapter>();
        var path = ManifestsPath;
        string[] files = [];
        if (path is null)
            problems.Add(new("ControlPlane:ManifestsPath", "ControlPlane:ManifestsPath is not set: no LoraAdapters are declared."));
        else if (!Directory.Exists(path))
            problems.Add(new(path, $"the manifests folder {path} does not exist (watching for it)."));
        else
        {
            try
            {
                files = [.. Directory.EnumerateFiles(path)
                    .Where(f => f.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".yml", StringComparison.OrdinalIgnoreCase))
                    .Order(StringComparer.Ordinal)];
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                problems.Add(new(path, $"cannot list {path}: {e.Message}"));
            }
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        var byKey = new Dictionary<string, string>(StringComparer.Ordinal);
        var now = _time.GetUtcNow().UtcDateTime;
        foreach (var file in files)
        {
            seen.Add(file);
            ManifestFile parsed;
            DateTime modified;
            try
            {
                var text = File.ReadAllText(file);
                modified = File.GetLastWriteTimeUtc(file);
                var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
                if (!_files.TryGetValue(file, out var cached) || cached.Hash != hash)
                    _files[file] = cached = (hash, ManifestReader.Read(file, text));
                parsed = cached.Parsed;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                problems.Add(new(file, $"{Path.GetFileName(file)}: cannot read: {e.Message}"));
                continue;
            }

            if (parsed.Error is not null) problems.Add(new(file, parsed.Error));
            foreach (var doc in parsed.Documents)
            {
                if (doc.Adapter is null)
                {
                    problems.Add(new(file, $"{Path.GetFileName(file)}: {doc.Error}"));
                    continue;
                }
                var adapter = doc.Adapter;
                adapter.Metadata.NamespaceProperty ??= "default";
                var key = $"{adapter.Metadata.NamespaceProperty}/{adapter.Metadata.Name}";
                if (byKey.TryGetValue(key, out var firstFile))
                {
                    problems.Add(new(file, $"{Path.GetFileName(file)}: LoraAdapter {key} is already declared in {Path.GetFileName(firstFile)}; this copy is ignored."));
                    continue;
                }
                byKey[key] = file;
                Stamp(adapter, key, doc.Error is null ? KubernetesJson.Serialize(adapter.Spec) : "invalid:" + doc.Error, modified < now ? modified : now, file);
                declared.Add(new DeclaredAdapter(adapter, Path.GetDirectoryName(file), file, doc.Error));
            }
        }
        foreach (var gone in _files.Keys.Where(f => !seen.Contains(f)).ToList()) _files.Remove(gone);
        foreach (var gone in _identities.Keys.Where(k => !byKey.ContainsKey(k)).ToList()) _identities.Remove(gone);

        var fingerprint = string.Join("\n", declared.Select(d => $"{d.Key}@{d.Resource.Metadata.Generation}:{d.ReadError}"))
                          + "\n--\n" + string.Join("\n", problems.Select(p => p.Message));
        _current = new HomeSnapshot(declared, _engines, problems);
        var first = !_synced;
        _synced = true;
        if (fingerprint == _lastFingerprint && !first) return;
        _lastFingerprint = fingerprint;
        foreach (var p in problems) LogManifestProblem(_logger, p.Origin, p.Message);
        LogManifestsRead(_logger, declared.Count, files.Length, problems.Count);
        Changed?.Invoke();
    }

    /// <summary>Gives a file-declared object what the API server would: uid, creation time, a generation that moves with the spec.</summary>
    private void Stamp(LoraAdapter adapter, string key, string specJson, DateTime firstSeen, string file)
    {
        if (!_identities.TryGetValue(key, out var id))
            _identities[key] = id = new ObjectIdentity(specJson, 1, firstSeen, Guid.NewGuid().ToString());
        else if (id.SpecJson != specJson)
            _identities[key] = id = id with { SpecJson = specJson, Generation = id.Generation + 1 };
        adapter.Metadata.Generation = id.Generation;
        adapter.Metadata.CreationTimestamp = id.Created;
        adapter.Metadata.Uid = id.Uid;
        adapter.Metadata.Annotations ??= new Dictionary<string, string>();
        adapter.Metadata.Annotations["hybridserving.io/manifest-file"] = file;
    }

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        // Registered under two service types, so the container may dispose it twice.
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        await _stop.CancelAsync();
        _watcher?.Dispose();
        if (_loop is not null) await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Read {Adapters} LoraAdapter(s) from {Files} manifest file(s); {Problems} problem(s)")]
    private static partial void LogManifestsRead(ILogger logger, int adapters, int files, int problems);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "Manifest problem in {Origin}: {Message}")]
    private static partial void LogManifestProblem(ILogger logger, string origin, string message);

    [LoggerMessage(EventId = 102, Level = LogLevel.Error, Message = "Reading the manifests folder failed")]
    private static partial void LogRescanFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "Cannot watch {Path} for changes ({Reason}); polling only")]
    private static partial void LogWatcherUnavailable(ILogger logger, string path, string reason);
}
