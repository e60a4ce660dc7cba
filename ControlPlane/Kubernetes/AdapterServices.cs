using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using HybridServing.Contracts.Resources;
using k8s;
using k8s.Models;

namespace HybridServing.ControlPlane.Kubernetes;

/// <summary>One engine pod that holds an adapter: an EndpointSlice endpoint.</summary>
internal sealed record AdapterServiceEndpoint(string Ip, string PodNamespace, string PodName, string? PodUid, string? Node);

/// <summary>The Service + EndpointSlice wanted for one adapter name in one namespace.</summary>
internal sealed record DesiredAdapterService(
    string Namespace, string ServiceName, string AdapterName, int TargetPort, string OwnerName, string? OwnerUid,
    IReadOnlyList<AdapterServiceEndpoint> Endpoints);

/// <summary>
/// AIBrix-style per-adapter service discovery: a selector-less Service per loaded adapter name and an EndpointSlice naming the
/// engine pods where it is Loaded. <see cref="Desired"/> is pure; <see cref="SyncAsync"/> lists what exists (by
/// our managed-by labels), diffs and applies through the mutation budget, and writes nothing when nothing changed.
/// </summary>
internal sealed partial class AdapterServices(KubeApi api, KubernetesHomeOptions options, MutationBudget budget, TimeProvider time, ILogger logger)
{
    public const string AdapterLabel = "hybridserving.io/adapter";
    public const string ManagedByLabel = "app.kubernetes.io/managed-by";
    public const string ManagedByValue = "hybridserving";
    public const string SliceServiceLabel = "kubernetes.io/service-name";
    public const string SliceManagedByLabel = "endpointslice.kubernetes.io/managed-by";
    // Label values cannot hold '/' (the API server refuses "hybridserving.io/controlplane"), so the built-in
    // controller's style is used: a dotted name ("endpointslice-controller.k8s.io").
    public const string SliceManagedByValue = "controlplane.hybridserving.io";
    public const int ServicePort = 8000;
    public const string PortName = "http";
    private const string Loaded = "Loaded";

    private readonly Dictionary<string, (string Rv, LoraAdapter Obj)> _adapterCache = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Rv, V1Pod Obj)> _podCache = new(StringComparer.Ordinal);
    private string? _applied;
    private DateTimeOffset _appliedAt;
    private int _failures;
    private DateTimeOffset _notBefore;

    /// <summary>Writes made (creates, updates, deletes that succeeded).</summary>
    public long Writes { get; private set; }

    // ------------------------------------------------------------------ desired state (pure)

    /// <summary>
    /// The Services wanted: for every live LoraAdapter, every adapter name its status shows Loaded on at least one
    /// serving engine pod with an IPv4 address. Two objects exposing one name in a namespace: the older keeps it
    /// (as the reconciler's NameConflict rule says).
    /// </summary>
    public static IReadOnlyList<DesiredAdapterService> Desired(IEnumerable<LoraAdapter> adapters, IEnumerable<V1Pod> pods,
        string enginePortAnnotation, int defaultEnginePort)
    {
        var podList = pods.Where(EnginePods.IsServing).ToList();
        // podAssignments name a pod by its name, or namespace/name when two engines share a name (EnginePods.Select).
        var byName = podList.GroupBy(p => p.Metadata.Name, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        var byKey = podList.ToDictionary(p => $"{p.Metadata.NamespaceProperty}/{p.Metadata.Name}", StringComparer.Ordinal);
        var result = new Dictionary<(string Ns, string Service), DesiredAdapterService>();
        var ordered = adapters
            .Where(a => a.Metadata.DeletionTimestamp is null && a.Status?.PodAssignments is { Count: > 0 })
            .OrderBy(a => a.Metadata.CreationTimestamp ?? DateTime.MaxValue)
            .ThenBy(a => a.Metadata.Name, StringComparer.Ordinal);
        foreach (var adapter in ordered)
        {
            var ns = adapter.Metadata.NamespaceProperty ?? "default";
            var endpointsByName = new Dictionary<string, List<(AdapterServiceEndpoint Endpoint, int Port)>>(StringComparer.Ordinal);
            foreach (var assignment in adapter.Status!.PodAssignments!)
            {
                V1Pod? pod = null;
                if (byKey.TryGetValue(assignment.Pod, out var exact)) pod = exact;
                else if (byName.TryGetValue(assignment.Pod, out var named) && named.Count == 1) pod = named[0];
                if (pod is null || !IPAddress.TryParse(pod.Status.PodIP, out var ip) || ip.AddressFamily != AddressFamily.InterNetwork) continue;
                if (EnginePort(pod, enginePortAnnotation, defaultEnginePort) is not { } port) continue;
                foreach (var state in assignment.AdapterStates)
                {
                    if (state.State != Loaded || string.IsNullOrEmpty(state.Name)) continue;
                    if (!endpointsByName.TryGetValue(state.Name, out var list)) endpointsByName[state.Name] = list = [];
                    if (list.Any(e => e.Endpoint.PodName == pod.Metadata.Name && e.Endpoint.PodNamespace == pod.Metadata.NamespaceProperty)) continue;
                    list.Add((new AdapterServiceEndpoint(ip.ToString(), pod.Metadata.NamespaceProperty ?? "default", pod.Metadata.Name, pod.Metadata.Uid, pod.Spec?.NodeName), port));
                }
            }
            foreach (var (name, list) in endpointsByName.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                var service = ServiceName(name);
                if (result.ContainsKey((ns, service))) continue;
                // One slice, one port: the port most of the pods serve on (ties: the lowest); pods on another port are left out.
                var port = list.GroupBy(e => e.Port).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).First().Key;
                var endpoints = list.Where(e => e.Port == port).Select(e => e.Endpoint)
                    .OrderBy(e => e.PodNamespace, StringComparer.Ordinal).ThenBy(e => e.PodName, StringComparer.Ordinal).ToList();
                result[(ns, service)] = new DesiredAdapterService(ns, service, name, port, adapter.Metadata.Name, adapter.Metadata.Uid, endpoints);
            }
        }
        return [.. result.Values.OrderBy(d => d.Namespace, StringComparer.Ordinal).ThenBy(d => d.ServiceName, StringComparer.Ordinal)];
    }

    private static int? EnginePort(V1Pod pod, string annotation, int defaultPort)
    {
        if (pod.Metadata.Annotations?.TryGetValue(annotation, out var text) != true) return defaultPort;
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is >= 1 and <= 65535 ? port : null;
    }

    /// <summary>
    /// A Service name (DNS-1035 label: lower-case letters, digits and '-', starting with a letter, at most 63) for an
    /// adapter name (which may hold upper case, '.' and '_'). A name that had to change gets a hash of the original
    /// so that "a.b" and "a_b" do not collide.
    /// </summary>
    public static string ServiceName(string adapterName)
    {
        var sb = new StringBuilder(adapterName.Length);
        foreach (var c in adapterName.ToLowerInvariant()) sb.Append(c is >= 'a' and <= 'z' or >= '0' and <= '9' ? c : '-');
        var s = sb.ToString().Trim('-');
        while (s.Contains("--", StringComparison.Ordinal)) s = s.Replace("--", "-", StringComparison.Ordinal);
        if (s.Length == 0 || s[0] is < 'a' or > 'z') s = "lora-" + s;
        s = s.TrimEnd('-');
        if (s == adapterName && s.Length <= 63) return s;
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(adapterName)))[..8];
        return $"{(s.Length > 54 ? s[..54] : s).TrimEnd('-')}-{hash}";
    }

    // ------------------------------------------------------------------ objects

    public static JsonObject ServiceObject(DesiredAdapterService d)
    {
        var meta = new JsonObject
        {
            ["name"] = d.ServiceName,
            ["namespace"] = d.Namespace,
            ["labels"] = new JsonObject { [AdapterLabel] = d.ServiceName, [ManagedByLabel] = ManagedByValue },
            ["annotations"] = new JsonObject { [AdapterLabel] = d.AdapterName },
        };
        if (d.OwnerUid is not null)
            meta["ownerReferences"] = new JsonArray(new JsonObject
            {
                ["apiVersion"] = LoraAdapter.ApiVersionValue, ["kind"] = LoraAdapter.KindName, ["name"] = d.OwnerName, ["uid"] = d.OwnerUid,
            });
        return new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Service",
            ["metadata"] = meta,
            ["spec"] = new JsonObject
            {
                ["type"] = "ClusterIP",
                ["ports"] = new JsonArray(new JsonObject { ["name"] = PortName, ["protocol"] = "TCP", ["port"] = ServicePort, ["targetPort"] = d.TargetPort }),
            },
        };
    }

    public static JsonObject SliceObject(DesiredAdapterService d, string? serviceUid)
    {
        var meta = new JsonObject
        {
            ["name"] = d.ServiceName,
            ["namespace"] = d.Namespace,
            ["labels"] = new JsonObject { [SliceServiceLabel] = d.ServiceName, [SliceManagedByLabel] = SliceManagedByValue, [AdapterLabel] = d.ServiceName },
        };
        // Owned by its Service, as the built-in controller does: deleting the Service (or, through it, the LoraAdapter) collects the slice.
        if (serviceUid is not null)
            meta["ownerReferences"] = new JsonArray(new JsonObject
            {
                ["apiVersion"] = "v1", ["kind"] = "Service", ["name"] = d.ServiceName, ["uid"] = serviceUid, ["controller"] = true, ["blockOwnerDeletion"] = true,
            });
        var endpoints = new JsonArray();
        foreach (var e in d.Endpoints)
        {
            var target = new JsonObject { ["kind"] = "Pod", ["namespace"] = e.PodNamespace, ["name"] = e.PodName };
            if (e.PodUid is not null) target["uid"] = e.PodUid;
            var endpoint = new JsonObject
            {
                ["addresses"] = new JsonArray(JsonValue.Create(e.Ip)),
                ["conditions"] = new JsonObject { ["ready"] = true },
                ["targetRef"] = target,
            };
            if (!string.IsNullOrEmpty(e.Node)) endpoint["nodeName"] = e.Node;
            endpoints.Add(endpoint);
        }
        return new JsonObject
        {
            ["apiVersion"] = "discovery.k8s.io/v1",
            ["kind"] = "EndpointSlice",
            ["metadata"] = meta,
            ["addressType"] = "IPv4",
            ["ports"] = new JsonArray(new JsonObject { ["name"] = PortName, ["protocol"] = "TCP", ["port"] = d.TargetPort }),
            ["endpoints"] = endpoints,
        };
    }

    /// <summary>The parts of a Service or EndpointSlice we manage; two objects with the same signature need no write.</summary>
    internal static string Signature(JsonElement obj)
    {
        var sb = new StringBuilder();
        var meta = obj.GetProperty("metadata");
        foreach (var label in new[] { AdapterLabel, ManagedByLabel, SliceServiceLabel, SliceManagedByLabel })
            if (meta.TryGetProperty("labels", out var l) && l.ValueKind == JsonValueKind.Object && l.TryGetProperty(label, out var v)) sb.Append(label).Append('=').Append(v.GetString()).Append('\n');
        if (meta.TryGetProperty("ownerReferences", out var owners) && owners.ValueKind == JsonValueKind.Array)
            foreach (var o in owners.EnumerateArray()) sb.Append("owner=").Append(Text(o, "kind")).Append('/').Append(Text(o, "uid")).Append('\n');
        if (obj.TryGetProperty("spec", out var spec) && spec.TryGetProperty("ports", out var sp)) AppendPorts(sb, sp, "targetPort");
        if (obj.TryGetProperty("addressType", out var at)) sb.Append("addressType=").Append(at.GetString()).Append('\n');
        if (obj.TryGetProperty("ports", out var ports)) AppendPorts(sb, ports, null);
        if (obj.TryGetProperty("endpoints", out var eps) && eps.ValueKind == JsonValueKind.Array)
            foreach (var e in eps.EnumerateArray())
            {
                var addresses = e.TryGetProperty("addresses", out var a) && a.ValueKind == JsonValueKind.Array ? string.Join(",", a.EnumerateArray().Select(x => x.GetString())) : "";
                var ready = e.TryGetProperty("conditions", out var c) && c.TryGetProperty("ready", out var r) && r.ValueKind == JsonValueKind.True;
                var target = e.TryGetProperty("targetRef", out var t) ? $"{Text(t, "namespace")}/{Text(t, "name")}/{Text(t, "uid")}" : "";
                sb.Append("endpoint=").Append(addresses).Append('|').Append(ready).Append('|').Append(target).Append('|').Append(Text(e, "nodeName")).Append('\n');
            }
        return sb.ToString();
    }

    private static void AppendPorts(StringBuilder sb, JsonElement ports, string? target)
    {
        if (ports.ValueKind != JsonValueKind.Array) return;
        foreach (var p in ports.EnumerateArray())
            sb.Append("port=").Append(Text(p, "name")).Append('/').Append(Text(p, "protocol")).Append('/').Append(Raw(p, "port"))
              .Append(target is null ? "" : "->" + Raw(p, target)).Append('\n');
    }

    private static string Text(JsonElement e, string property) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(property, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() ?? "" : "";

    private static string Raw(JsonElement e, string property) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(property, out var v) ? v.ToString() : "";

    private static string Signature(JsonNode node)
    {
        using var doc = JsonDocument.Parse(node.ToJsonString());
        return Signature(doc.RootElement);
    }

    // ------------------------------------------------------------------ sync

    /// <summary>
    /// Brings the cluster's adapter Services and EndpointSlices in line with the stored statuses. Lists what exists
    /// only when the desired state changed or a resync interval passed; returns when to try again after a failure, or
    /// at once when it stopped before a write because <paramref name="yieldTo"/> said higher-priority writes (statuses,
    /// finalizers) are waiting: Services share the mutation budget and must not hold them up for thousands of writes.
    /// </summary>
    public async Task<DateTimeOffset?> SyncAsync(IReadOnlyDictionary<string, JsonElement> adapterObjects, IReadOnlyDictionary<string, JsonElement> podObjects,
        Func<bool> isLeader, Func<bool> yieldTo, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        if (_failures > 0 && now < _notBefore) return _notBefore;
        var desired = Desired(Cached(_adapterCache, adapterObjects), Cached(_podCache, podObjects), options.EnginePortAnnotation, options.DefaultEnginePort);
        var fingerprint = string.Join("\n", desired.Select(d => $"{d.Namespace}/{d.ServiceName}\n{Signature(ServiceObject(d))}{Signature(SliceObject(d, null))}"));
        if (fingerprint == _applied && now - _appliedAt < options.ResyncInterval) return null;
        try
        {
            if (!await ApplyAsync(desired, isLeader, yieldTo, ct)) return isLeader() ? time.GetUtcNow() : null;
            _applied = fingerprint;
            _appliedAt = now;
            _failures = 0;
            return null;
        }
        catch (Exception e) when (e is KubeApiException or HttpRequestException or IOException or JsonException && !ct.IsCancellationRequested)
        {
            _applied = null;
            _failures++;
            var delay = TimeSpan.FromMilliseconds(Math.Min(options.BackoffMax.TotalMilliseconds, options.BackoffInitial.TotalMilliseconds * Math.Pow(2, Math.Min(_failures - 1, 16))));
            _notBefore = time.GetUtcNow() + delay;
            LogSyncFailed(logger, _failures, delay, e.Message);
            return _notBefore;
        }
    }

    private static List<T> Cached<T>(Dictionary<string, (string Rv, T Obj)> cache, IReadOnlyDictionary<string, JsonElement> objects)
    {
        var list = new List<T>(objects.Count);
        foreach (var (key, obj) in objects)
        {
            var rv = ResourceInformer.ResourceVersionOf(obj) ?? "";
            if (!cache.TryGetValue(key, out var cached) || cached.Rv != rv)
            {
                try { cache[key] = cached = (rv, KubernetesJson.Deserialize<T>(obj.GetRawText())); }
                catch (JsonException) { continue; } // a malformed object is reported by the snapshot; it exposes nothing here
            }
            list.Add(cached.Obj);
        }
        foreach (var gone in cache.Keys.Where(k => !objects.ContainsKey(k)).ToList()) cache.Remove(gone);
        return list;
    }

    /// <summary>False when it stopped early (leadership lost, or higher-priority writes waiting).</summary>
    private async Task<bool> ApplyAsync(IReadOnlyList<DesiredAdapterService> desired, Func<bool> isLeader, Func<bool> yieldTo, CancellationToken ct)
    {
        var services = await ListAllAsync("api/v1/services", $"{ManagedByLabel}={ManagedByValue},{AdapterLabel}", ct);
        var slices = await ListAllAsync("apis/discovery.k8s.io/v1/endpointslices", $"{SliceManagedByLabel}={SliceManagedByValue}", ct);
        var wanted = desired.Select(d => $"{d.Namespace}/{d.ServiceName}").ToHashSet(StringComparer.Ordinal);

        foreach (var d in desired)
        {
            if (!isLeader() || yieldTo()) return false;
            var key = $"{d.Namespace}/{d.ServiceName}";
            if (await EnsureAsync(ServicePath(d.Namespace), d.ServiceName, ServiceObject(d), services.TryGetValue(key, out var s) ? s : null, merge: true, ct) is not { } service)
                continue;
            var uid = service.GetProperty("metadata").TryGetProperty("uid", out var u) ? u.GetString() : null;
            await EnsureAsync(SlicePath(d.Namespace), d.ServiceName, SliceObject(d, uid), slices.TryGetValue(key, out var sl) ? sl : null, merge: false, ct);
        }
        foreach (var (key, _) in slices.Where(kv => !wanted.Contains(kv.Key)).OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!isLeader() || yieldTo()) return false;
            var (ns, name) = Split(key);
            await DeleteAsync(SlicePath(ns) + "/" + name, ct);
        }
        foreach (var (key, _) in services.Where(kv => !wanted.Contains(kv.Key)).OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!isLeader() || yieldTo()) return false;
            var (ns, name) = Split(key);
            await DeleteAsync(ServicePath(ns) + "/" + name, ct);
            LogRemoved(logger, key);
        }
        return true;
    }

    private static string ServicePath(string ns) => $"api/v1/namespaces/{ns}/services";
    private static string SlicePath(string ns) => $"apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices";

    private static (string Ns, string Name) Split(string key)
    {
        var i = key.IndexOf('/');
        return (key[..i], key[(i + 1)..]);
    }

    private async Task<Dictionary<string, JsonElement>> ListAllAsync(string path, string selector, CancellationToken ct)
    {
        var result = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        string? cont = null;
        do
        {
            var page = await api.ListAsync(path, selector, options.ListPageSize, cont, ct);
            foreach (var item in page.Items)
            {
                var meta = item.GetProperty("metadata");
                result[$"{meta.GetProperty("namespace").GetString()}/{meta.GetProperty("name").GetString()}"] = item;
            }
            cont = page.Continue;
        } while (cont is not null);
        return result;
    }

    /// <summary>
    /// Creates the object, or updates it when its managed parts differ. Services are merge-patched (the API server
    /// owns their clusterIP); slices are replaced. Both are guarded by resourceVersion: a 409 re-reads and retries.
    /// </summary>
    private async Task<JsonElement?> EnsureAsync(string collection, string name, JsonObject desired, JsonElement? existing, bool merge, CancellationToken ct)
    {
        var want = Signature(desired);
        for (var attempt = 0; attempt < 5; attempt++)
        {
            try
            {
                if (existing is null)
                {
                    await budget.TakeAsync(ct);
                    using var created = await api.PostAsync(collection, desired.ToJsonString(), ct);
                    Writes++;
                    LogCreated(logger, collection, name);
                    return created.RootElement.Clone();
                }
                var current = existing.Value;
                if (!Ours(current))
                {
                    // Someone else's object of that name (found on a create's 409): never taken over.
                    LogForeign(logger, collection, name);
                    return null;
                }
                if (Signature(current) == want) return current;
                var rv = current.GetProperty("metadata").GetProperty("resourceVersion").GetString();
                JsonDocument updated;
                await budget.TakeAsync(ct);
                if (merge)
                {
                    var meta = (JsonObject)desired["metadata"]!.DeepClone();
                    meta.Remove("name");
                    meta.Remove("namespace");
                    meta["resourceVersion"] = rv;
                    if (meta["ownerReferences"] is null) meta["ownerReferences"] = null;
                    updated = await api.MergePatchAsync($"{collection}/{name}", new JsonObject { ["metadata"] = meta, ["spec"] = desired["spec"]!.DeepClone() }, ct);
                }
                else
                {
                    var body = (JsonObject)desired.DeepClone();
                    body["metadata"]!["resourceVersion"] = rv;
                    updated = await api.PutAsync($"{collection}/{name}", body, ct);
                }
                using (updated)
                {
                    Writes++;
                    LogUpdated(logger, collection, name);
                    return updated.RootElement.Clone();
                }
            }
            catch (KubeApiException e) when (e.IsConflict || e.IsNotFound)
            {
                // 409: created or changed by someone since we listed; 404: deleted meanwhile. Read again and decide again.
                existing = await GetOrNullAsync($"{collection}/{name}", ct);
            }
        }
        throw new KubeApiException(409, "Conflict", $"{collection}/{name}: not written after 5 conflicting attempts.");
    }

    private static bool Ours(JsonElement obj) =>
        obj.GetProperty("metadata").TryGetProperty("labels", out var l) && l.ValueKind == JsonValueKind.Object
        && ((l.TryGetProperty(ManagedByLabel, out var m) && m.GetString() == ManagedByValue)
            || (l.TryGetProperty(SliceManagedByLabel, out var sm) && sm.GetString() == SliceManagedByValue));

    private async Task<JsonElement?> GetOrNullAsync(string path, CancellationToken ct)
    {
        try
        {
            using var doc = await api.GetAsync(path, ct);
            return doc.RootElement.Clone();
        }
        catch (KubeApiException e) when (e.IsNotFound)
        {
            return null;
        }
    }

    private async Task DeleteAsync(string path, CancellationToken ct)
    {
        await budget.TakeAsync(ct);
        try
        {
            using var _ = await api.DeleteAsync(path, ct);
            Writes++;
        }
        catch (KubeApiException e) when (e.IsNotFound)
        {
        }
    }

    [LoggerMessage(EventId = 790, Level = LogLevel.Warning, Message = "Adapter Services: sync failed (attempt {Failures}), retrying in {Delay}: {Message}")]
    private static partial void LogSyncFailed(ILogger logger, int failures, TimeSpan delay, string message);

    [LoggerMessage(EventId = 791, Level = LogLevel.Information, Message = "Adapter Services: created {Collection}/{Name}")]
    private static partial void LogCreated(ILogger logger, string collection, string name);

    [LoggerMessage(EventId = 792, Level = LogLevel.Information, Message = "Adapter Services: updated {Collection}/{Name}")]
    private static partial void LogUpdated(ILogger logger, string collection, string name);

    [LoggerMessage(EventId = 794, Level = LogLevel.Warning, Message = "Adapter Services: {Collection}/{Name} exists and is not managed by HybridServing; left alone, the adapter gets no Service there")]
    private static partial void LogForeign(ILogger logger, string collection, string name);

    [LoggerMessage(EventId = 793, Level = LogLevel.Information, Message = "Adapter Services: removed {Key} (adapter no longer loaded anywhere or no longer declared)")]
    private static partial void LogRemoved(ILogger logger, string key);
}
