namespace HybridServing.AppHost.Tests;

/// <summary>The README checker itself: what it reads from a block, and that a wrong answer fails it.</summary>
public sealed class ReadmeCommandsTests
{
    private const string Markdown = """
        ```bash
        curl -s http://127.0.0.1:8080/not-tested
        ```
        ```bash readme-test
        # prose for the reader
        curl -s http://127.0.0.1:8080/v1/chat/completions \
          -d '{}'
        #=> status 200; json id choices.x; header x-hybridserving-engine
        dotnet run --project MockEngine -- --port 8000
        #=> exit 3; stderr port 8000 is in use
        ```
        """;

    [Fact]
    public void Only_marked_blocks_are_read_with_continuations_and_the_expectation_under_each_command()
    {
        var commands = ReadmeCommands.Parse(Markdown);
        Assert.Equal(2, commands.Count);
        Assert.Equal("curl -s http://127.0.0.1:8080/v1/chat/completions \\\n  -d '{}'", commands[0].Text);
        Assert.Equal(["status 200", "json id choices.x", "header x-hybridserving-engine"], commands[0].Expect);
        Assert.Equal(9, commands[1].Line);
        Assert.Equal(["exit 3", "stderr port 8000 is in use"], commands[1].Expect);
    }

    [Fact]
    public void The_default_ports_move_to_the_stacks_port_base()
    {
        Assert.Equal("curl http://127.0.0.1:20080/v1 localhost:20081 --port 20000 port 20002 8080",
            ReadmeCommands.OnPortBase("curl http://127.0.0.1:8080/v1 localhost:8081 --port 8000 port 8002 8080", 20000));
    }

    [Fact]
    public void What_the_README_says_is_checked_and_a_wrong_answer_fails()
    {
        var command = ReadmeCommands.Parse(Markdown)[0];
        var good = new ReadmeCommands.Outcome(0, """{"id":"x","choices":{"x":1}}""", "", [new(200, new HashSet<string> { "x-hybridserving-engine" })]);
        Assert.Empty(ReadmeCommands.Failures(command, good));

        var bad = new ReadmeCommands.Outcome(7, """{"id":"x"}""", "", [new(404, new HashSet<string> { "date" })]);
        Assert.Equal(["exit code 7, expected 0", "status 200: got 404", "json: no key choices.x", "header x-hybridserving-engine: not in the response headers (date)"],
            ReadmeCommands.Failures(command, bad));
        Assert.Contains("status 200: no HTTP response was recorded", ReadmeCommands.Failures(command, good with { Responses = [] }));
    }

    [Fact]
    public void Server_sent_events_must_end_with_done_and_carry_json()
    {
        var command = new ReadmeCommands.Command(1, "curl", ["sse"]);
        Assert.Empty(ReadmeCommands.Failures(command, new(0, "data: {\"a\":1}\n\ndata: [DONE]\n\n", "", [])));
        Assert.NotEmpty(ReadmeCommands.Failures(command, new(0, "data: {\"a\":1}\n\n", "", [])));
        Assert.NotEmpty(ReadmeCommands.Failures(command, new(0, "data: {oops\n\ndata: [DONE]\n\n", "", [])));
    }

    [Fact]
    public void A_misspelt_expectation_or_one_without_a_command_is_a_format_error_naming_the_line()
    {
        var e = Assert.Throws<FormatException>(() => ReadmeCommands.Parse("```bash readme-test\ncurl x\n#=> statsu 200\n```\n"));
        Assert.Equal("README.md:3: 'statsu 200' is not an expectation (status, header, json, sse, prints, stderr, exit)", e.Message);
        Assert.Throws<FormatException>(() => ReadmeCommands.Parse("```bash readme-test\n#=> status 200\n```\n"));
    }

    [Fact]
    public void A_curl_header_dump_gives_the_final_status_and_header_names()
    {
        var r = ReadmeCommands.ParseHeaderDump("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nX-HybridServing-Engine: engine-0\r\n\r\n");
        Assert.Equal(401, r.Status);
        Assert.Equal(["content-type", "x-hybridserving-engine"], r.Headers.Order());
    }
}
