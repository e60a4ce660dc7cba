using System.Collections.Immutable;
using System.Text.Json;

namespace HybridServing.ControlPlane.Kubernetes;

/// <summary>
/// A list-then-watch cache of one kind of object: a paginated list, then a watch from the list's
/// resourceVersion with bookmarks; the watch is reopened from the last version seen when it ends or
/// goes silent (watchdog), and the kind is listed again when the server answers 410 Gone (code, not
/// reason text). A re-list is diffed against the cache, so nothing that changed while the watch was
/// down is missed. Objects are kept as raw JSON keyed by namespace/name; readers get immutable snapshots.
/// </summary>
internal sealed partial class ResourceInformer : IAsyncDisposable
{
    private readonly string _name;
    private readonly KubeApi _api;
    private readonly string _path;
    private readonly string? _labelSelector;
    private readonly KubernetesHomeOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private ImmutableDictionary<string, JsonElement> _objects = ImmutableDictionary.Create<string, JsonElement>(StringComparer.Ordinal);
    private Task? _loop;
    private volatile bool _synced;
    private string _resourceVersion = "";
    private int _lists;
    private int _watches;

    public ResourceInformer(string name, KubeApi api, string path, string? labelSelector, KubernetesHomeOptions options, TimeProvider time, ILogger logger)
    {
        _name = name;
        _api = api;
        _path = path;
        _labelSelector = labelSelector;
        _options = options;
        _time = time;
        _logger = logger;
    }

    /// <summary>Raised after the cache changed (an event applied, a re-list that differed) and at every resync.</summary>
    public event Action? Changed;

    /// <summary>Raised once, when the first complete list is in the cache.</summary>
    public event Action? FirstSynced;

    /// <summary>True once the first complete list is in the cache.</summary>
    public bool Synced => _synced;

    /// <summary>The cached objects by namespace/name.</summary>
    public ImmutableDictionary<string, JsonElement> Objects => Volatile.Read(ref _objects);

    /// <summary>The last resourceVersion seen (list, event or bookmark): where the next watch starts.</summary>
    public string ResourceVersion => Volatile.Read(ref _resourceVersion);

    /// <summary>How many complete lists were made (1 at start; more after 410 Gone).</summary>
    public int Lists => Volatile.Read(ref _lists);

    /// <summary>How many watches were opened.</summary>
    public int Watches => Volatile.Read(ref _watches);

    public static string KeyOf(JsonElement obj)
    {
        var meta = obj.GetProperty("metadata");
        var ns = meta.TryGetProperty("namespace", out var n) ? n.GetString() : null;
        var name = meta.GetProperty("name").GetString();
        return string.IsNullOrEmpty(ns) ? name ?? "" : $"{ns}/{name}";
    }

    public static string? ResourceVersionOf(JsonElement obj) =>
        obj.TryGetProperty("metadata", out var m) && m.TryGetProperty("resourceVersion", out var rv) ? rv.GetString() : null;

    public void Start() => _loop ??= Task.Run(() => RunAsync(_stop.Token));

    /// <summary>
    /// Puts an object this process just wrote into the cache (write-through), so that a decision taken
    /// before the watch delivers the change does not repeat the write. The watch event overwrites it.
    /// </summary>
    public void Upsert(JsonElement obj)
    {
        // Never let a late write-through replace a newer object a watch event already delivered.
        ImmutableInterlocked.Update(ref _objects, (d, o) =>
            d.TryGetValue(KeyOf(o), out var cached) && IsOlder(o, cached) ? d : d.SetItem(KeyOf(o), o), obj.Clone());
    }

    /// <summary>
    /// True when <paramref name="candidate"/> is older than <paramref name="cached"/>. resourceVersions are
    /// opaque by contract, but every API server in practice hands out increasing integers (etcd revisions);
    /// when either does not parse, nothing is assumed and the candidate wins.
    /// </summary>
    private static bool IsOlder(JsonElement candidate, JsonElement cached) =>
        long.TryParse(ResourceVersionOf(candidate), out var a) && long.TryParse(ResourceVersionOf(cached), out var b) && a < b;

    public void Remove(string key) => ImmutableInterlocked.Update(ref _objects, (d, k) => d.Remove(k), key);

    private async Task RunAsync(CancellationToken ct)
    {
        var failures = 0;
        var needList = true;
        // Periodic resync: level-based consumers look at everything again even when nothing arrived.
        await using var resync = _time.CreateTimer(_ => { if (_synced) Changed?.Invoke(); }, null, _options.ResyncInterval, _options.ResyncInterval);
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (needList)
                {
                    await ListAsync(ct);
                    needList = false;
                }
                failures = 0;
                await WatchAsync(ct);
                // A clean end (server-side timeout, closed stream): carry on from the last version, no re-list.
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (KubeApiException e) when (e.IsGone)
            {
                // The version we hold is too old (compaction) or a continue token expired: start over.
                LogGone(_logger, _name, _resourceVersion, e.Message);
                needList = true;
                continue;
            }
            catch (WatchdogException)
            {
                LogWatchdog(_logger, _name, _options.WatchdogTimeout);
                continue;
            }
            catch (Exception e)
            {
                failures++;
                var delay = Backoff(failures);
                LogFailed(_logger, _name, delay, e.Message);
                try { await Task.Delay(delay, _time, ct); }
                catch (OperationCanceledException) { return; }
            }
        }
    }

    private TimeSpan Backoff(int failures)
    {
        var ms = _options.BackoffInitial.TotalMilliseconds * Math.Pow(2, Math.Min(failures - 1, 16));
        var capped = Math.Min(ms, _options.BackoffMax.TotalMilliseconds);
        // Jitter so that replicas do not retry in step.
        return TimeSpan.FromMilliseconds(capped * (0.8 + 0.4 * Random.Shared.NextDouble()));
    }

    private async Task ListAsync(CancellationToken ct)
    {
        var fresh = ImmutableDictionary.CreateBuilder<string, JsonElement>(StringComparer.Ordinal);
        string? continueToken = null;
        string resourceVersion;
        do
        {
            var page = await _api.ListAsync(_path, _labelSelector, _options.ListPageSize, continueToken, ct);
            foreach (var item in page.Items) fresh[KeyOf(item)] = item;
            continueToken = page.Continue;
            resourceVersion = page.ResourceVersion;
        } while (continueToken is not null);

        var old = Objects;
        var next = fresh.ToImmutable();
        var changed = !_synced || old.Count != next.Count
                      || next.Any(kv => !old.TryGetValue(kv.Key, out var o) || ResourceVersionOf(o) != ResourceVersionOf(kv.Value));
        Volatile.Write(ref _objects, next);
        Volatile.Write(ref _resourceVersion, resourceVersion);
        Interlocked.Increment(ref _lists);
        LogListed(_logger, _name, next.Count, resourceVersion);
        var first = !_synced;
        _synced = true;
        if (first) FirstSynced?.Invoke();
        if (changed) Changed?.Invoke();
    }

    private async Task WatchAsync(CancellationToken ct)
    {
        var seconds = (int)Math.Max(1, _options.WatchTimeout.TotalSeconds * (1 + Random.Shared.NextDouble()));
        using var watch = CancellationTokenSource.CreateLinkedTokenSource(ct);
        long lastActivity = _time.GetUtcNow().UtcTicks;
        var watchdogFired = false;
        // The watchdog: a stream that delivers nothing, not even a bookmark, is cut and reopened.
        await using var watchdog = _time.CreateTimer(_ =>
        {
            if (_time.GetUtcNow().UtcTicks - Interlocked.Read(ref lastActivity) >= _options.WatchdogTimeout.Ticks)
            {
                watchdogFired = true;
                watch.Cancel();
            }
        }, null, Tick(), Tick());
        Interlocked.Increment(ref _watches);
        try
        {
            await foreach (var e in _api.WatchAsync(_path, _labelSelector, _resourceVersion, seconds, watch.Token))
            {
                Interlocked.Exchange(ref lastActivity, _time.GetUtcNow().UtcTicks);
                if (e.Object.ValueKind != JsonValueKind.Object) continue;
                var rv = ResourceVersionOf(e.Object);
                switch (e.Type)
                {
                    case "ADDED":
                    case "MODIFIED":
                        Upsert(e.Object);
                        break;
                    case "DELETED":
                        Remove(KeyOf(e.Object));
                        break;
                    case "BOOKMARK":
                        break;
                    default:
                        continue;
                }
                if (!string.IsNullOrEmpty(rv)) Volatile.Write(ref _resourceVersion, rv);
                if (e.Type != "BOOKMARK") Changed?.Invoke();
            }
        }
        catch (Exception) when (watchdogFired && !ct.IsCancellationRequested)
        {
            throw new WatchdogException();
        }
    }

    private TimeSpan Tick()
    {
        var t = _options.WatchdogTimeout / 4;
        return t < TimeSpan.FromMilliseconds(10) ? TimeSpan.FromMilliseconds(10) : t;
    }

    private sealed class WatchdogException : Exception;

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        // The container may dispose a singleton once per registration that resolves it.
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        await _stop.CancelAsync();
        if (_loop is not null) await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    [LoggerMessage(EventId = 700, Level = LogLevel.Information, Message = "Informer {Informer}: listed {Count} object(s) at resourceVersion {ResourceVersion}")]
    private static partial void LogListed(ILogger logger, string informer, int count, string resourceVersion);

    [LoggerMessage(EventId = 701, Level = LogLevel.Information, Message = "Informer {Informer}: resourceVersion {ResourceVersion} is gone (410: {Message}); listing again")]
    private static partial void LogGone(ILogger logger, string informer, string resourceVersion, string message);

    [LoggerMessage(EventId = 702, Level = LogLevel.Warning, Message = "Informer {Informer}: the watch was silent for {Timeout}; reopening it")]
    private static partial void LogWatchdog(ILogger logger, string informer, TimeSpan timeout);

    [LoggerMessage(EventId = 703, Level = LogLevel.Warning, Message = "Informer {Informer}: API call failed, retrying in {Delay}: {Message}")]
    private static partial void LogFailed(ILogger logger, string informer, TimeSpan delay, string message);
}
