using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using HybridServing.KubeApiTestServer.Http;
using HybridServing.KubeApiTestServer.Patching;
using HybridServing.KubeApiTestServer.Resources;
using HybridServing.KubeApiTestServer.Selectors;
using HybridServing.KubeApiTestServer.Watching;

namespace HybridServing.KubeApiTestServer.Storage;

/// <summary>How a patch body is to be read, from the request's Content-Type.</summary>
internal enum PatchKind
{
    Merge,
    Json,
    StrategicMerge,
}

/// <summary>The <c>DeleteOptions</c> fields the store honours.</summary>
internal sealed record DeleteRequest(string? PreconditionUid, string? PreconditionResourceVersion, bool Orphan, long? GracePeriodSeconds = null)
{
    /// <summary><c>dryRun: ["All"]</c> in the DeleteOptions body (the query parameter works too).</summary>
    public bool DryRun { get; init; }
}

internal enum FieldValidation
{
    Ignore,
    Warn,
    Strict,
}

/// <summary>How one write request runs: <c>dryRun</c>, <c>fieldValidation</c>, and the warnings it produced.</summary>
internal sealed record WriteOptions(bool DryRun, FieldValidation FieldValidation)
{
    public static readonly WriteOptions Default = new(false, FieldValidation.Ignore);

    public List<string> Warnings { get; } = [];
}

internal sealed record ListPage(IReadOnlyList<string> Items, long ResourceVersion, string? Continue, long? RemainingItemCount);

/// <summary>
/// The state of the test cluster and every semantic rule of the API: one global, monotonically
/// increasing resourceVersion (as etcd's revision), optimistic concurrency, status subresource
/// isolation, generation, finalizers and deletionTimestamp, owner-reference garbage collection,
/// consistent paginated lists and a bounded per-resource event history for watches. One lock
/// guards it all: correctness over throughput, and ordering of watch events comes for free.
/// </summary>
internal sealed partial class ObjectStore
{
    private const string GenerateNameAlphabet = "bcdfghjklmnpqrstvwxz2456789";
    private const int MaxListSnapshots = 256;

    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private readonly Random _random;
    private readonly Dictionary<string, ResourceState> _states = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ListSnapshot> _snapshots = new(StringComparer.Ordinal);
    private readonly Queue<string> _snapshotOrder = new();
    private readonly Dictionary<string, List<Func<JsonObject, FieldError?>>> _validators = new(StringComparer.Ordinal);
    private readonly List<ITimer> _graceTimers = [];
    // Like etcd's revision, which is 1 in an empty cluster: a list never reports "0", which a watch
    // would read as "start from the current state" instead of "resume from here".
    private long _resourceVersion = 1;
    private long _snapshotIds;
    // The running request's options (under the lock): with DryRun, Store answers the would-be object and changes nothing.
    private WriteOptions _write = WriteOptions.Default;

    public ObjectStore(TimeProvider time, int historyCapacity, Random random)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(historyCapacity, 1);
        _time = time;
        _random = random;
        HistoryCapacity = historyCapacity;
    }

    public int HistoryCapacity { get; }

    /// <summary>Adds an admission check run on every API write of the resource (not on seeds).</summary>
    public void AddValidator(ApiResource resource, Func<JsonObject, FieldError?> validate)
    {
        lock (_gate)
        {
            if (!_validators.TryGetValue(resource.Key, out var list))
            {
                _validators[resource.Key] = list = [];
            }

            list.Add(validate);
        }
    }

    private void Admit(ApiResource resource, JsonObject candidate, string name)
    {
        if (resource.Key == ResourceCatalog.Secrets.Key)
        {
            FoldStringData(candidate);
        }

        if (_write.FieldValidation != FieldValidation.Ignore && FieldSchema.UnknownFields(resource, candidate) is { Count: > 0 } unknown)
        {
            var messages = unknown.Select(f => $"unknown field \"{f}\"").ToArray();
            if (_write.FieldValidation == FieldValidation.Strict)
            {
                throw ApiError.BadRequest($"{resource.Kind} in version \"{resource.Version}\" cannot be handled as a {resource.Kind}: strict decoding error: {string.Join(", ", messages)}");
            }

            _write.Warnings.AddRange(messages);
        }

        if (!_validators.TryGetValue(resource.Key, out var list))
        {
            return;
        }

        foreach (var validate in list)
        {
            // Validators get a copy: they must not be able to change what is stored.
            if (validate((JsonObject)candidate.DeepClone()) is { } error)
            {
                throw ApiError.Invalid(resource, name, error.Field, error.Message);
            }
        }
    }

    /// <summary>When true, namespaced objects can only be created in an existing Namespace object.</summary>
    public bool RequireNamespaces { get; set; }

    /// <summary>
    /// When true, deleting a pod bound to a node leaves it Terminating (deletionTimestamp in the
    /// future) for its grace period, after which it goes, as when a kubelet confirms the kill.
    /// </summary>
    public bool GracefulPodDeletion { get; set; }

    public long CurrentResourceVersion
    {
        get
        {
            lock (_gate)
            {
                return _resourceVersion;
            }
        }
    }

    public int OpenWatchCount
    {
        get
        {
            lock (_gate)
            {
                return _states.Values.Sum(s => s.Watchers.Count);
            }
        }
    }

    // ---------------------------------------------------------------- reads

    public StoredObject Get(ApiResource resource, string ns, string name)
    {
        lock (_gate)
        {
            return Find(State(resource), ns, name) ?? throw ApiError.NotFound(resource, name);
        }
    }

    public StoredObject? TryGet(ApiResource resource, string ns, string name)
    {
        lock (_gate)
        {
            return Find(State(resource), ns, name);
        }
    }

    public IReadOnlyList<StoredObject> Snapshot(ApiResource resource, string? ns)
    {
        lock (_gate)
        {
            return State(resource).Objects.Values.Where(o => ns is null || o.Namespace == ns).ToArray();
        }
    }

    public ListPage List(ApiResource resource, string? ns, LabelSelector labels, FieldSelector fields, int? limit, string? continueToken)
    {
        lock (_gate)
        {
            var state = State(resource);
            ListSnapshot? snapshot = null;
            IReadOnlyList<string> items;
            long rv;
            var start = 0;
            if (!string.IsNullOrEmpty(continueToken))
            {
                var (id, offset) = DecodeContinue(continueToken);
                if (!_snapshots.TryGetValue(id, out snapshot) || snapshot.Resource.Key != resource.Key || snapshot.ResourceVersion < state.StorageCompactedThrough)
                {
                    throw ApiError.Expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.");
                }

                if (offset < 0 || offset > snapshot.Items.Count)
                {
                    throw ApiError.BadRequest("continue key is not valid: offset out of range");
                }

                (items, rv, start) = (snapshot.Items, snapshot.ResourceVersion, offset);
            }
            else
            {
                items = state.Objects.Values
                    .Where(o => (ns is null || o.Namespace == ns) && labels.Matches(o.Labels) && fields.Matches(o.Fields))
                    .Select(o => o.Json)
                    .ToArray();
                rv = _resourceVersion;
            }

            var take = limit is > 0 ? Math.Min(limit.Value, items.Count - start) : items.Count - start;
            var page = items.Skip(start).Take(take).ToArray();
            var next = start + take;
            if (next >= items.Count)
            {
                return new ListPage(page, rv, null, null);
            }

            // Later pages come from the snapshot the first page was cut from, as etcd serves them
            // from the first page's revision: a paginated list is consistent even while objects change.
            if (snapshot is null)
            {
                snapshot = new ListSnapshot((++_snapshotIds).ToString(CultureInfo.InvariantCulture), resource, rv, items);
                _snapshots[snapshot.Id] = snapshot;
                _snapshotOrder.Enqueue(snapshot.Id);
                while (_snapshotOrder.Count > MaxListSnapshots)
                {
                    _snapshots.Remove(_snapshotOrder.Dequeue());
                }
            }

            return new ListPage(page, rv, EncodeContinue(snapshot.Id, next), items.Count - next);
        }
    }

    // ---------------------------------------------------------------- writes

    /// <summary>
    /// Runs a write as a request asks: with <see cref="WriteOptions.DryRun"/> (<c>dryRun=All</c>) every
    /// check runs as usual but nothing is stored: no resourceVersion is used up, no watch event, no
    /// garbage collection or timer. Unknown fields are refused (Strict), collected in
    /// <see cref="WriteOptions.Warnings"/> (Warn) or let through (Ignore).
    /// </summary>
    public T Write<T>(WriteOptions options, Func<T> write)
    {
        lock (_gate)
        {
            _write = options;
            try
            {
                return write();
            }
            finally
            {
                _write = WriteOptions.Default;
            }
        }
    }

    /// <summary>Creates an object (POST). With <paramref name="seed"/>, a test hook: upsert, status kept, no create-only checks.</summary>
    /// <summary>A Secret's write-only <c>stringData</c> is merged into <c>data</c> (base64, its keys winning) and never stored, as a real API server does.</summary>
    private static void FoldStringData(JsonObject secret)
    {
        if (secret["stringData"] is not JsonObject strings)
        {
            return;
        }

        var data = secret["data"] as JsonObject ?? new JsonObject();
        foreach (var (key, value) in strings)
        {
            data[key] = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(StoredObject.Text(value) ?? ""));
        }

        secret["data"] = data;
        secret.Remove("stringData");
    }

    public StoredObject Create(ApiResource resource, string ns, JsonObject body, bool seed = false)
    {
        lock (_gate)
        {
            var state = State(resource);
            CheckTypeMeta(resource, body);
            var meta = Metadata(body);
            ns = ScopeNamespace(resource, ns, meta);
            if (RequireNamespaces && resource.Namespaced && Find(State(ResourceCatalog.Namespaces), "", ns) is null)
            {
                throw ApiError.NotFound(ResourceCatalog.Namespaces, ns);
            }

            var name = StoredObject.Text(meta["name"]);
            var generateName = StoredObject.Text(meta["generateName"]);
            if (string.IsNullOrEmpty(name))
            {
                if (string.IsNullOrEmpty(generateName))
                {
                    throw ApiError.Invalid(resource, "", "metadata.name", "Required value: name or generateName is required");
                }

                do
                {
                    name = generateName + new string(Enumerable.Range(0, 5).Select(_ => GenerateNameAlphabet[_random.Next(GenerateNameAlphabet.Length)]).ToArray());
                }
                while (Find(state, ns, name) is not null);
                meta["name"] = name;
            }

            ValidateName(resource, name);
            var existing = Find(state, ns, name);
            if (seed && existing is not null)
            {
                var previous = Metadata(existing.CloneNode());
                meta["uid"] ??= existing.Uid;
                meta["creationTimestamp"] ??= previous["creationTimestamp"]?.DeepClone();
                meta["generation"] ??= previous["generation"]?.DeepClone();
                return Store(state, existing, body, WatchEventTypes.Modified);
            }

            if (existing is not null)
            {
                throw ApiError.AlreadyExists(resource, name);
            }

            if (!seed)
            {
                if (!string.IsNullOrEmpty(StoredObject.Text(meta["resourceVersion"])))
                {
                    throw ApiError.BadRequest("resourceVersion should not be set on objects to be created");
                }

                // Server-managed fields are the server's; a create cannot start out terminating.
                meta.Remove("uid");
                meta.Remove("creationTimestamp");
                meta.Remove("deletionTimestamp");
                meta.Remove("deletionGracePeriodSeconds");
                meta.Remove("generation");
                if (resource.HasStatusSubresource)
                {
                    // Status is written through the status subresource only (the kubelet, the controller).
                    body.Remove("status");
                }
            }

            meta["uid"] ??= Guid.NewGuid().ToString();
            meta["creationTimestamp"] ??= Timestamp();
            if (resource.TracksGeneration)
            {
                meta["generation"] ??= 1;
            }
            else
            {
                meta.Remove("generation");
            }

            if (!seed)
            {
                Admit(resource, body, name);
            }
            else if (resource.Key == ResourceCatalog.Secrets.Key)
            {
                FoldStringData(body);
            }

            return Store(state, null, body, WatchEventTypes.Added);
        }
    }

    /// <summary>PUT on the object (<paramref name="statusOnly"/> false) or on its status subresource.</summary>
    public StoredObject Update(ApiResource resource, string ns, string name, JsonObject body, bool statusOnly)
    {
        lock (_gate)
        {
            var state = State(resource);
            var current = Find(state, ns, name) ?? throw ApiError.NotFound(resource, name);
            CheckTypeMeta(resource, body);
            CheckIdentity(resource, ns, name, Metadata(body));
            CheckPrecondition(current, Metadata(body));
            return Commit(state, current, body, statusOnly);
        }
    }

    public StoredObject Patch(ApiResource resource, string ns, string name, PatchKind kind, JsonNode? patch, bool statusOnly)
    {
        lock (_gate)
        {
            var state = State(resource);
            var current = Find(state, ns, name) ?? throw ApiError.NotFound(resource, name);
            var candidate = ApplyPatch(resource, name, kind, current.CloneNode(), patch);
            CheckTypeMeta(resource, candidate);
            CheckIdentity(resource, ns, name, Metadata(candidate));

            // A resourceVersion inside the patch is a precondition, as on a real server.
            CheckPrecondition(current, Metadata(candidate));
            return Commit(state, current, candidate, statusOnly);
        }
    }

    /// <summary>Applies a patch document to an object (or a Scale); 422 when the patch cannot apply.</summary>
    public static JsonObject ApplyPatch(ApiResource resource, string name, PatchKind kind, JsonObject target, JsonNode? patch)
    {
        JsonNode? patched;
        try
        {
            patched = kind switch
            {
                PatchKind.Json => JsonPatch.Apply(target, patch),
                PatchKind.StrategicMerge => StrategicMergePatch.Apply(resource.Kind, target, patch),
                _ => MergePatch.Apply(target, patch),
            };
        }
        catch (StrategicMergePatchException e)
        {
            throw new ApiError(422, "Invalid", $"the strategic merge patch cannot be applied: {e.Message}")
            {
                DetailsName = name,
                DetailsResource = resource,
            };
        }
        catch (JsonPatchException e)
        {
            throw new ApiError(422, "Invalid", $"the server rejected our request due to an error in our request: {e.Message}")
            {
                DetailsName = name,
                DetailsResource = resource,
            };
        }

        return patched as JsonObject
               ?? throw new ApiError(422, "Invalid", "the patch does not produce a JSON object") { DetailsName = name, DetailsResource = resource };
    }

    /// <summary>
    /// DELETE. Without finalizers the object goes at once (DELETED event, dependents collected);
    /// with finalizers it only gets a deletionTimestamp and stays until an update removes the last one.
    /// </summary>
    public (StoredObject Object, bool Removed) Delete(ApiResource resource, string ns, string name, DeleteRequest request)
    {
        lock (_gate)
        {
            var state = State(resource);
            var current = Find(state, ns, name) ?? throw ApiError.NotFound(resource, name);
            if (request.PreconditionUid is { Length: > 0 } uid && uid != current.Uid)
            {
                throw ApiError.Conflict(resource, name, $"Precondition failed: UID in precondition: {uid}, UID in object meta: {current.Uid}");
            }

            if (request.PreconditionResourceVersion is { Length: > 0 } rv && rv != current.ResourceVersion.ToString(CultureInfo.InvariantCulture))
            {
                throw ApiError.Conflict(resource, name, $"Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {current.ResourceVersion}");
            }

            return DeleteLocked(state, current, request.Orphan, request.GracePeriodSeconds);
        }
    }

    public IReadOnlyList<StoredObject> DeleteCollection(ApiResource resource, string? ns, LabelSelector labels, FieldSelector fields)
    {
        lock (_gate)
        {
            var state = State(resource);
            var victims = state.Objects.Values
                .Where(o => (ns is null || o.Namespace == ns) && labels.Matches(o.Labels) && fields.Matches(o.Fields))
                .ToArray();
            return victims.Select(v => Find(state, v.Namespace, v.Name) is { } still ? DeleteLocked(state, still, orphan: false).Object : null)
                .OfType<StoredObject>()
                .ToArray();
        }
    }

    // ---------------------------------------------------------------- watch

    /// <summary>
    /// Opens a watch. No resourceVersion (or "0") starts with a synthetic ADDED per existing object;
    /// a resourceVersion replays the history after it, or yields one ERROR event with a 410 Status
    /// when the history no longer reaches back that far.
    /// </summary>
    public WatchSubscription Watch(ApiResource resource, string? ns, LabelSelector labels, FieldSelector fields, string? resourceVersion, bool bookmarks)
    {
        lock (_gate)
        {
            var state = State(resource);
            var subscription = new WatchSubscription(resource, ns, labels, fields, bookmarks);
            if (string.IsNullOrEmpty(resourceVersion) || resourceVersion == "0")
            {
                foreach (var obj in state.Objects.Values.Where(subscription.Matches))
                {
                    subscription.Write(WatchEventTypes.Added, obj.Json);
                }
            }
            else if (!long.TryParse(resourceVersion, NumberStyles.None, CultureInfo.InvariantCulture, out var from))
            {
                throw ApiError.BadRequest($"invalid resource version \"{resourceVersion}\": a resourceVersion is a decimal number");
            }
            else if (from < state.CompactedThrough)
            {
                var gone = ApiError.Expired($"too old resource version: {from} ({state.CompactedThrough})");
                subscription.Write(WatchEventTypes.Error, gone.ToStatus().ToJsonString());
                subscription.Complete();
                return subscription;
            }
            else
            {
                foreach (var change in state.History.Where(c => c.After.ResourceVersion > from))
                {
                    subscription.Offer(change.Type, change.Before, change.After);
                }
            }

            state.Watchers.Add(subscription);
            return subscription;
        }
    }

    public void Unsubscribe(WatchSubscription subscription)
    {
        lock (_gate)
        {
            if (_states.TryGetValue(subscription.Resource.Key, out var state))
            {
                state.Watchers.Remove(subscription);
            }
        }
    }

    /// <summary>Sends a BOOKMARK at the current resourceVersion to every watch that asked for bookmarks.</summary>
    public void SendBookmarks()
    {
        lock (_gate)
        {
            foreach (var watcher in _states.Values.SelectMany(s => s.Watchers).Where(w => w.Bookmarks))
            {
                watcher.WriteBookmark(_resourceVersion);
            }
        }
    }

    /// <summary>Ends (or cuts, with <paramref name="abort"/>) every open watch; returns how many there were.</summary>
    public int CloseWatches(bool abort)
    {
        lock (_gate)
        {
            var count = 0;
            foreach (var state in _states.Values)
            {
                foreach (var watcher in state.Watchers)
                {
                    if (abort)
                    {
                        watcher.Abort();
                    }
                    else
                    {
                        watcher.Complete();
                    }

                    count++;
                }

                state.Watchers.Clear();
            }

            return count;
        }
    }

    /// <summary>
    /// Forgets the event history up to the current resourceVersion (all resources, or one), as etcd
    /// compaction does: watches and continue tokens from before it then get 410.
    /// </summary>
    public long Compact(ApiResource? resource)
    {
        lock (_gate)
        {
            var states = resource is null ? _states.Values.ToArray() : [State(resource)];
            foreach (var state in states)
            {
                state.History.Clear();
                state.CompactedThrough = _resourceVersion;
                state.StorageCompactedThrough = _resourceVersion;
            }

            return _resourceVersion;
        }
    }

    // ---------------------------------------------------------------- internals

    private ResourceState State(ApiResource resource)
    {
        if (!_states.TryGetValue(resource.Key, out var state))
        {
            state = new ResourceState { Resource = resource };
            _states[resource.Key] = state;
        }

        // A CRD applied later re-registers its resource (printer columns, schema): new versions use that.
        state.Resource = resource;

        return state;
    }

    private static StoredObject? Find(ResourceState state, string ns, string name) =>
        state.Objects.GetValueOrDefault(StoredObject.StoreKey(ns, name));

    private (StoredObject Object, bool Removed) DeleteLocked(ResourceState state, StoredObject current, bool orphan, long? requestedGrace = null)
    {
        var graceful = GracefulPodDeletion && current.Resource.Key == ResourceCatalog.Pods.Key && current.NodeName.Length > 0;
        if (current.IsTerminating)
        {
            // A delete with grace period 0 on a terminating pod forces it (kubectl delete --force).
            return graceful && requestedGrace == 0 && current.GracePeriodSeconds > 0
                ? FinishGracePeriod(state, current)
                : (current, false);
        }

        var grace = graceful ? requestedGrace ?? current.TerminationGracePeriodSeconds ?? 30 : 0;
        if (grace > 0)
        {
            var terminating = current.CloneNode();
            var meta = Metadata(terminating);
            meta["deletionTimestamp"] = Timestamp(TimeSpan.FromSeconds(grace));
            meta["deletionGracePeriodSeconds"] = grace;
            var stored = Store(state, current, terminating, WatchEventTypes.Modified);
            var uid = stored.Uid;
            var (ns, name) = (stored.Namespace, stored.Name);
            if (_write.DryRun)
            {
                return (stored, false);
            }

            _graceTimers.Add(_time.CreateTimer(_ =>
            {
                lock (_gate)
                {
                    if (Find(state, ns, name) is { IsTerminating: true } still && still.Uid == uid && still.GracePeriodSeconds > 0)
                    {
                        FinishGracePeriod(state, still);
                    }
                }
            }, null, TimeSpan.FromSeconds(grace), Timeout.InfiniteTimeSpan));
            return (stored, false);
        }

        if (current.Finalizers.Count > 0)
        {
            var next = current.CloneNode();
            var meta = Metadata(next);
            meta["deletionTimestamp"] = Timestamp();
            meta["deletionGracePeriodSeconds"] = 0;
            return (Store(state, current, next, WatchEventTypes.Modified), false);
        }

        return (Remove(state, current, current.CloneNode(), orphan), true);
    }

    /// <summary>The end of a pod's grace period: gone, unless finalizers still hold it.</summary>
    private (StoredObject Object, bool Removed) FinishGracePeriod(ResourceState state, StoredObject current)
    {
        var next = current.CloneNode();
        Metadata(next)["deletionGracePeriodSeconds"] = 0;
        return current.Finalizers.Count == 0
            ? (Remove(state, current, next, orphan: false), true)
            : (Store(state, current, next, WatchEventTypes.Modified), false);
    }

    public void StopTimers()
    {
        lock (_gate)
        {
            foreach (var timer in _graceTimers)
            {
                timer.Dispose();
            }

            _graceTimers.Clear();
        }
    }

    private StoredObject Remove(ResourceState state, StoredObject current, JsonObject last, bool orphan)
    {
        var removed = Store(state, current, last, WatchEventTypes.Deleted);
        if (!orphan && !_write.DryRun && removed.Uid.Length > 0)
        {
            // Background cascading deletion, as the garbage collector does for ownerReferences.
            foreach (var (dependentState, dependent) in _states.Values
                         .SelectMany(s => s.Objects.Values.Where(o => o.OwnerUids.Contains(removed.Uid)).Select(o => (s, o)))
                         .ToArray())
            {
                if (Find(dependentState, dependent.Namespace, dependent.Name) is { } still)
                {
                    DeleteLocked(dependentState, still, orphan: false);
                }
            }
        }

        return removed;
    }

    /// <summary>Builds the next version from <paramref name="candidate"/> and stores it, unless nothing changed.</summary>
    private StoredObject Commit(ResourceState state, StoredObject current, JsonObject candidate, bool statusOnly)
    {
        var resource = ResourceOf(state);
        var previous = current.CloneNode();
        JsonObject next;
        if (statusOnly)
        {
            // The status subresource changes .status and nothing else, and never the generation.
            next = current.CloneNode();
            if (candidate["status"] is { } status)
            {
                next["status"] = status.DeepClone();
            }
            else
            {
                next.Remove("status");
            }
        }
        else
        {
            next = candidate;
            var meta = Metadata(next);
            var before = Metadata(previous);
            foreach (var field in new[] { "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "name", "namespace" })
            {
                if (before[field] is { } value)
                {
                    meta[field] = value.DeepClone();
                }
                else
                {
                    meta.Remove(field);
                }
            }

            next["apiVersion"] = resource.ApiVersion;
            next["kind"] = resource.Kind;
            if (resource.HasStatusSubresource)
            {
                // Writes to the main resource cannot change status when a status subresource exists.
                if (previous["status"] is { } oldStatus)
                {
                    next["status"] = oldStatus.DeepClone();
                }
                else
                {
                    next.Remove("status");
                }
            }

            if (current.IsTerminating)
            {
                var added = Finalizers(next).Except(current.Finalizers).ToArray();
                if (added.Length > 0)
                {
                    throw ApiError.Invalid(resource, current.Name, "metadata.finalizers",
                        $"Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [{string.Join(", ", added)}]");
                }
            }

            if (resource.TracksGeneration && SpecChanged(previous, next))
            {
                var generation = ReadLong(previous["metadata"]?["generation"]);
                meta["generation"] = generation + 1;
            }
        }

        Metadata(next)["resourceVersion"] = current.ResourceVersion.ToString(CultureInfo.InvariantCulture);
        if (JsonNode.DeepEquals(previous, next))
        {
            // A write that changes nothing keeps the resourceVersion and emits no event, as on a real server.
            return current;
        }

        Admit(resource, next, current.Name);
        // Gone once the last finalizer is removed, unless a pod's grace period is still running.
        if (current.IsTerminating && Finalizers(next).Count == 0 && current.GracePeriodSeconds == 0)
        {
            return Remove(state, current, next, orphan: false);
        }

        return Store(state, current, next, WatchEventTypes.Modified);
    }

    private StoredObject Store(ResourceState state, StoredObject? before, JsonObject node, string type)
    {
        if (_write.DryRun)
        {
            // The would-be object: a dry-run create has no resourceVersion yet, an update keeps the current one.
            if (before is null)
            {
                Metadata(node).Remove("resourceVersion");
            }
            else
            {
                Metadata(node)["resourceVersion"] = before.ResourceVersion.ToString(CultureInfo.InvariantCulture);
            }

            return new StoredObject(before?.Resource ?? ResourceOf(state), node);
        }

        Metadata(node)["resourceVersion"] = (++_resourceVersion).ToString(CultureInfo.InvariantCulture);
        var stored = new StoredObject(before?.Resource ?? ResourceOf(state), node);
        if (type == WatchEventTypes.Deleted)
        {
            state.Objects.Remove(stored.Key);
        }
        else
        {
            state.Objects[stored.Key] = stored;
        }

        state.History.AddLast(new Change(type, before, stored));
        while (state.History.Count > HistoryCapacity)
        {
            state.CompactedThrough = state.History.First!.Value.After.ResourceVersion;
            state.History.RemoveFirst();
        }

        foreach (var watcher in state.Watchers)
        {
            watcher.Offer(type, before, stored);
        }

        return stored;
    }

    private ApiResource ResourceOf(ResourceState state) =>
        state.Resource ?? throw new InvalidOperationException("resource state without a resource");

    private static bool SpecChanged(JsonObject before, JsonObject after)
    {
        static IEnumerable<KeyValuePair<string, JsonNode?>> Content(JsonObject o) =>
            o.Where(p => p.Key is not ("metadata" or "status" or "kind" or "apiVersion")).OrderBy(p => p.Key, StringComparer.Ordinal);

        var a = Content(before).ToArray();
        var b = Content(after).ToArray();
        return a.Length != b.Length || a.Zip(b).Any(p => p.First.Key != p.Second.Key || !JsonNode.DeepEquals(p.First.Value, p.Second.Value));
    }

    private static long ReadLong(JsonNode? node) =>
        node is JsonValue value && long.TryParse(value.ToJsonString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed) ? parsed : 0;

    private static IReadOnlyList<string> Finalizers(JsonObject node) =>
        (node["metadata"]?["finalizers"] as JsonArray)?.Select(StoredObject.Text).OfType<string>().ToArray() ?? [];

    private static JsonObject Metadata(JsonObject body)
    {
        if (body["metadata"] is JsonObject meta)
        {
            return meta;
        }

        if (body["metadata"] is not null)
        {
            throw ApiError.BadRequest("metadata must be an object");
        }

        meta = new JsonObject();
        body["metadata"] = meta;
        return meta;
    }

    private static void CheckTypeMeta(ApiResource resource, JsonObject body)
    {
        var apiVersion = StoredObject.Text(body["apiVersion"]);
        var kind = StoredObject.Text(body["kind"]);
        if (!string.IsNullOrEmpty(apiVersion) && apiVersion != resource.ApiVersion)
        {
            throw ApiError.BadRequest($"the API version in the data ({apiVersion}) does not match the expected API version ({resource.ApiVersion})");
        }

        if (!string.IsNullOrEmpty(kind) && kind != resource.Kind)
        {
            throw ApiError.BadRequest($"the kind in the data ({kind}) does not match the expected kind ({resource.Kind}) for {resource.QualifiedName}");
        }

        body["apiVersion"] = resource.ApiVersion;
        body["kind"] = resource.Kind;
    }

    private static string ScopeNamespace(ApiResource resource, string ns, JsonObject meta)
    {
        var bodyNamespace = StoredObject.Text(meta["namespace"]);
        if (!resource.Namespaced)
        {
            meta.Remove("namespace");
            return "";
        }

        if (!string.IsNullOrEmpty(bodyNamespace) && bodyNamespace != ns)
        {
            throw ApiError.BadRequest("the namespace of the provided object does not match the namespace sent on the request");
        }

        if (string.IsNullOrEmpty(ns))
        {
            throw ApiError.BadRequest($"a namespace is required to create {resource.QualifiedName}: use the namespaced path /namespaces/{{namespace}}/{resource.Plural}");
        }

        meta["namespace"] = ns;
        return ns;
    }

    private static void CheckIdentity(ApiResource resource, string ns, string name, JsonObject meta)
    {
        var bodyName = StoredObject.Text(meta["name"]);
        if (!string.IsNullOrEmpty(bodyName) && bodyName != name)
        {
            throw ApiError.BadRequest($"the name of the object ({bodyName}) does not match the name on the URL ({name})");
        }

        var bodyNamespace = StoredObject.Text(meta["namespace"]);
        if (resource.Namespaced && !string.IsNullOrEmpty(bodyNamespace) && bodyNamespace != ns)
        {
            throw ApiError.BadRequest("the namespace of the provided object does not match the namespace sent on the request");
        }
    }

    private static void CheckPrecondition(StoredObject current, JsonObject meta)
    {
        // An empty resourceVersion makes the write unconditional.
        var rv = StoredObject.Text(meta["resourceVersion"]);
        if (!string.IsNullOrEmpty(rv) && rv != current.ResourceVersion.ToString(CultureInfo.InvariantCulture))
        {
            throw ApiError.StaleResourceVersion(current.Resource, current.Name);
        }
    }

    private static void ValidateName(ApiResource resource, string name)
    {
        if (name.Length > 253 || !DnsSubdomain().IsMatch(name))
        {
            throw ApiError.Invalid(resource, name, "metadata.name",
                $"Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')");
        }
    }

    private string Timestamp(TimeSpan? after = null) => (_time.GetUtcNow() + (after ?? TimeSpan.Zero)).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string EncodeContinue(string id, int offset) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new ContinueToken(id, offset), ContinueTokenContext.Default.ContinueToken)));

    private static (string Id, int Offset) DecodeContinue(string token)
    {
        try
        {
            var decoded = JsonSerializer.Deserialize(Convert.FromBase64String(token), ContinueTokenContext.Default.ContinueToken);
            if (decoded?.Id is { Length: > 0 } id)
            {
                return (id, decoded.Offset);
            }
        }
        catch (Exception e) when (e is FormatException or JsonException)
        {
            // Reported below like any other malformed token.
        }

        throw ApiError.BadRequest($"continue key is not valid: \"{token}\" was not issued by this server");
    }

    [GeneratedRegex(@"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
    private static partial Regex DnsSubdomain();

    private sealed class ResourceState
    {
        public ApiResource? Resource { get; set; }
        public SortedDictionary<string, StoredObject> Objects { get; } = new(StringComparer.Ordinal);
        public LinkedList<Change> History { get; } = new();
        /// <summary>Watches from before this resourceVersion get 410: the watch cache's window, trimmed by capacity and by compaction.</summary>
        public long CompactedThrough { get; set; }

        /// <summary>
        /// Continue tokens from before this get 410. Only an explicit compaction moves it: in a real
        /// cluster that is etcd's periodic compaction, independent of the watch cache's size.
        /// </summary>
        public long StorageCompactedThrough { get; set; }
        public List<WatchSubscription> Watchers { get; } = [];
    }

    private sealed record Change(string Type, StoredObject? Before, StoredObject After);

    private sealed record ListSnapshot(string Id, ApiResource Resource, long ResourceVersion, IReadOnlyList<string> Items);
}

internal sealed record ContinueToken(string Id, int Offset);

[System.Text.Json.Serialization.JsonSerializable(typeof(ContinueToken))]
internal sealed partial class ContinueTokenContext : System.Text.Json.Serialization.JsonSerializerContext;
