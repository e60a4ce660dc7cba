namespace HybridServing.KubeApiTestServer.Diagnostics;

internal sealed class RequestLog
{
    private readonly Lock _gate = new();
    private readonly List<RequestRecord> _records = [];

    public void Add(RequestRecord record)
    {
        lock (_gate)
        {
            _records.Add(record);
        }
    }

    public IReadOnlyList<RequestRecord> Snapshot()
    {
        lock (_gate)
        {
            return _records.ToArray();
        }
    }

    public void Clear()
    {
        lock (_gate)
        {
            _records.Clear();
        }
    }
}
