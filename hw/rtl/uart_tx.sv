// UART transmitter, 8N1, LSB first, with an AXI-Stream style byte input.
//
// Same fractional bit timing as uart_rx.sv: the bit edges are at most one clock from
// the ideal ones, whatever CLK_HZ / BAUD is. Bytes go out back to back (one stop bit).
module uart_tx #(
    parameter int CLK_HZ = 25_000_000,
    parameter int BAUD   = 3_000_000
) (
    input  logic       clk,
    input  logic       rst_n,
    input  logic [7:0] s_tdata,
    input  logic       s_tvalid,
    output logic       s_tready,
    output logic       tx           // idle high
);
    localparam int AW = $clog2(CLK_HZ + BAUD) + 1;

    logic          busy;
    logic [3:0]    idx;             // bits sent of the current 10-bit frame
    logic [9:0]    shift;           // stop, data[7:0], start: shifted out LSB first
    logic [AW-1:0] acc;
    wire  [AW-1:0] next = acc + AW'(BAUD);
    wire           tick = next >= AW'(CLK_HZ);

    assign s_tready = !busy;

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            busy <= 1'b0;
            tx <= 1'b1;
            idx <= '0;
            acc <= '0;
        end else if (!busy) begin
            tx <= 1'b1;
            if (s_tvalid) begin
                busy <= 1'b1;
                shift <= {1'b1, s_tdata, 1'b0};
                tx <= 1'b0;             // the start bit begins now
                idx <= '0;
                acc <= '0;
            end
        end else begin
            acc <= tick ? next - AW'(CLK_HZ) : next;
            if (tick) begin
                if (idx == 4'd9) begin
                    busy <= 1'b0;       // the stop bit has lasted a whole bit
                    tx <= 1'b1;
                end else begin
                    tx <= shift[idx + 1];
                    idx <= idx + 1'b1;
                end
            end
        end
    end
endmodule
