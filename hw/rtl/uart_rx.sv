// UART receiver, 8N1, LSB first: the serial line from the host (e.g. the ULX3S's FTDI).
//
// Bit timing is a fractional accumulator (BAUD added per clock, one bit = CLK_HZ), so
// any baud rate works from any clock with at most one clock of sampling jitter:
// 3 Mbaud from 25 MHz is 8.33 clocks per bit, where an integer divider (8) would be
// 4 % off and sample the stop bit 40 % of a bit early. Each byte re-synchronises on
// its start bit's falling edge and samples every bit in its middle.
module uart_rx #(
    parameter int CLK_HZ = 25_000_000,
    parameter int BAUD   = 3_000_000
) (
    input  logic       clk,
    input  logic       rst_n,
    input  logic       rx,          // asynchronous pin, idle high
    output logic [7:0] data,
    output logic       valid,       // one cycle per received byte (no backpressure: a UART cannot wait)
    output logic       frame_err    // one cycle: the stop bit was 0
);
    localparam int AW = $clog2(CLK_HZ + BAUD) + 1;

    // Two flip-flops against metastability; the pin idles high.
    logic [1:0] sync = 2'b11;
    always_ff @(posedge clk) sync <= {sync[0], rx};
    wire rx_s = sync[1];

    logic          busy;
    logic [3:0]    idx;     // 0 start bit, 1..8 data bits, 9 stop bit
    logic [AW-1:0] acc;
    logic [7:0]    shift;
    wire  [AW-1:0] next = acc + AW'(BAUD);
    wire           tick = next >= AW'(CLK_HZ);

    always_ff @(posedge clk) begin
        valid <= 1'b0;
        frame_err <= 1'b0;
        if (!rst_n) begin
            busy <= 1'b0;
            idx <= '0;
            acc <= '0;
        end else if (!busy) begin
            if (!rx_s) begin
                // Half a bit until the middle of the start bit, less the two clocks the
                // edge spent in the synchronizer: without that, a host 3 % fast has its
                // stop bit sampled after it ended (2 of 8.33 clocks are a quarter bit).
                busy <= 1'b1;
                idx <= '0;
                acc <= AW'(CLK_HZ / 2 + 2 * BAUD);
            end
        end else begin
            acc <= tick ? next - AW'(CLK_HZ) : next;
            if (tick) begin
                idx <= idx + 1'b1;
                if (idx == 4'd0) begin
                    if (rx_s) busy <= 1'b0;             // a glitch, not a start bit
                end else if (idx <= 4'd8) begin
                    shift <= {rx_s, shift[7:1]};
                end else begin
                    busy <= 1'b0;
                    data <= shift;
                    valid <= rx_s;
                    frame_err <= !rx_s;
                end
            end
        end
    end
endmodule
