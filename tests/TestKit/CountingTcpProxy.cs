using System.Net;
using System.Net.Sockets;

namespace HybridServing.TestKit;

/// <summary>
/// A TCP proxy on 127.0.0.1 in front of a server that the test cannot instrument (s3rver is a node process):
/// it counts the bytes the server sends back, which is how a test proves a client read only part of an object,
/// and it can reset connections in the middle of an answer (<see cref="ResetAfter"/>): a network that breaks mid-download.
/// </summary>
public sealed class CountingTcpProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private long _downstream;
    private long _resetAfter = -1;
    private int _connections;
    private int _resets;

    public CountingTcpProxy(Uri target)
    {
        _target = new IPEndPoint(IPAddress.Parse(target.Host), target.Port);
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Url = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");
        _accepting = AcceptAsync();
    }

    public Uri Url { get; }

    /// <summary>Bytes sent from the server to clients (headers included) since the start or the last reset.</summary>
    public long BytesFromServer => Interlocked.Read(ref _downstream);

    public void Reset() => Interlocked.Exchange(ref _downstream, 0);

    /// <summary>
    /// From now on every connection is reset (TCP RST to the client) once the server has sent it more than
    /// <paramref name="bytes"/> bytes; null stops the fault. Connections already open are affected too.
    /// </summary>
    public void ResetAfter(long? bytes) => Interlocked.Exchange(ref _resetAfter, bytes ?? -1);

    /// <summary>Connections accepted so far.</summary>
    public int Connections => Volatile.Read(ref _connections);

    /// <summary>Connections this proxy reset so far.</summary>
    public int Resets => Volatile.Read(ref _resets);

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { return; }
            Interlocked.Increment(ref _connections);
            _ = RelayAsync(client);
        }
    }

    private async Task RelayAsync(TcpClient client)
    {
        using (client)
        using (var server = new TcpClient())
        {
            try
            {
                await server.ConnectAsync(_target, _stop.Token);
                var up = Pump(client.GetStream(), server.GetStream(), null);
                var down = Pump(server.GetStream(), client.GetStream(), client);
                await Task.WhenAny(up, down);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or IOException) { }
        }
    }

    /// <param name="downstreamClient">Set for the server-to-client direction: counted, and reset there when the fault says so.</param>
    private async Task Pump(Stream from, Stream to, TcpClient? downstreamClient)
    {
        var buffer = new byte[16 * 1024];
        long sent = 0;
        try
        {
            int n;
            while ((n = await from.ReadAsync(buffer, _stop.Token)) > 0)
            {
                if (downstreamClient is not null)
                {
                    var limit = Interlocked.Read(ref _resetAfter);
                    if (limit >= 0 && sent + n > limit)
                    {
                        // Send up to the limit, then RST: linger 0 makes Close abort the connection.
                        var part = (int)Math.Max(0, limit - sent);
                        if (part > 0) await to.WriteAsync(buffer.AsMemory(0, part), _stop.Token);
                        Interlocked.Add(ref _downstream, part);
                        Interlocked.Increment(ref _resets);
                        downstreamClient.LingerState = new LingerOption(true, 0);
                        downstreamClient.Close();
                        return;
                    }
                    sent += n;
                    Interlocked.Add(ref _downstream, n);
                }
                await to.WriteAsync(buffer.AsMemory(0, n), _stop.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException) { }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try { await _accepting; } catch (OperationCanceledException) { }
        _stop.Dispose();
    }
}
