using System.Threading.Channels;
using HybridServing.KubeApiTestServer.Resources;
using HybridServing.KubeApiTestServer.Selectors;
using HybridServing.KubeApiTestServer.Storage;

namespace HybridServing.KubeApiTestServer.Watching;

/// <summary>
/// One open watch: the lines still to be written to its HTTP response. The store writes into it
/// under its lock, in resourceVersion order, so replayed history, live events and bookmarks never
/// interleave wrongly.
/// </summary>
internal sealed class WatchSubscription
{
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _aborted = new();

    public WatchSubscription(ApiResource resource, string? ns, LabelSelector labels, FieldSelector fields, bool bookmarks)
    {
        Resource = resource;
        Namespace = ns;
        Labels = labels;
        Fields = fields;
        Bookmarks = bookmarks;
    }

    public ApiResource Resource { get; }
    public string? Namespace { get; }
    public LabelSelector Labels { get; }
    public FieldSelector Fields { get; }
    public bool Bookmarks { get; }

    public ChannelReader<string> Lines => _lines.Reader;

    /// <summary>Cancelled when a test asks for the connection to be cut rather than ended cleanly.</summary>
    public CancellationToken Aborted => _aborted.Token;

    public bool Matches(StoredObject? obj) =>
        obj is not null
        && (Namespace is null || obj.Namespace == Namespace)
        && Labels.Matches(obj.Labels)
        && Fields.Matches(obj.Fields);

    /// <summary>
    /// Offers a change. Like the real watch cache, an object that starts matching the selectors is
    /// ADDED and one that stops matching is DELETED for this watcher.
    /// </summary>
    public void Offer(string type, StoredObject? before, StoredObject after)
    {
        var wasIn = Matches(before);
        var isIn = Matches(after);
        var effective = type switch
        {
            WatchEventTypes.Added when isIn => WatchEventTypes.Added,
            WatchEventTypes.Modified when wasIn && isIn => WatchEventTypes.Modified,
            WatchEventTypes.Modified when isIn => WatchEventTypes.Added,
            WatchEventTypes.Modified when wasIn => WatchEventTypes.Deleted,
            WatchEventTypes.Deleted when isIn || wasIn => WatchEventTypes.Deleted,
            _ => null,
        };
        if (effective is not null)
        {
            Write(effective, after.Json);
        }
    }

    public void Write(string type, string objectJson) =>
        _lines.Writer.TryWrite("{\"type\":\"" + type + "\",\"object\":" + objectJson + "}\n");

    public void WriteBookmark(long resourceVersion) =>
        Write(WatchEventTypes.Bookmark, "{\"kind\":\"" + Resource.Kind + "\",\"apiVersion\":\"" + Resource.ApiVersion + "\",\"metadata\":{\"resourceVersion\":\"" + resourceVersion + "\"}}");

    /// <summary>Ends the stream after what is already queued, as a server ending a watch does.</summary>
    public void Complete() => _lines.Writer.TryComplete();

    public void Abort()
    {
        _lines.Writer.TryComplete();
        _aborted.Cancel();
    }
}

internal static class WatchEventTypes
{
    public const string Added = "ADDED";
    public const string Modified = "MODIFIED";
    public const string Deleted = "DELETED";
    public const string Bookmark = "BOOKMARK";
    public const string Error = "ERROR";
}
