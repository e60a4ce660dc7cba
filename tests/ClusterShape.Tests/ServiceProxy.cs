using System.Net;
using System.Net.Sockets;

namespace HybridServing.ClusterShape.Tests;

/// <summary>
/// kube-proxy's userspace mode for one Service port: listens on the Service's cluster IP and port and relays each
/// connection to the next ready endpoint (round robin over the selected pods' target port); no ready endpoint
/// refuses the connection, as a Service without endpoints does.
/// </summary>
internal sealed class ServiceProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly Func<IReadOnlyList<IPEndPoint>> _endpoints;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private int _next;

    public ServiceProxy(IPEndPoint listen, Func<IReadOnlyList<IPEndPoint>> endpoints)
    {
        _endpoints = endpoints;
        _listener = new TcpListener(listen);
        _listener.Start();
        _accepting = AcceptAsync();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { return; }
            _ = RelayAsync(client);
        }
    }

    private async Task RelayAsync(TcpClient client)
    {
        using (client)
        using (var server = new TcpClient())
        {
            var endpoints = _endpoints();
            if (endpoints.Count == 0)
            {
                client.Client.LingerState = new LingerOption(true, 0);
                return;
            }
            try
            {
                await server.ConnectAsync(endpoints[(int)((uint)Interlocked.Increment(ref _next) % endpoints.Count)], _stop.Token);
                server.NoDelay = client.NoDelay = true;
                var up = Pump(client.GetStream(), server.Client);
                var down = Pump(server.GetStream(), client.Client);
                await Task.WhenAll(up, down);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or IOException) { }
        }
    }

    private async Task Pump(NetworkStream from, Socket to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            int n;
            while ((n = await from.ReadAsync(buffer, _stop.Token)) > 0)
                await to.SendAsync(buffer.AsMemory(0, n), _stop.Token);
            to.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            try { to.Shutdown(SocketShutdown.Both); } catch (Exception inner) when (inner is SocketException or ObjectDisposedException) { }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }
}
